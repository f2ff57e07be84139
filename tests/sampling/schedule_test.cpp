// Timesteps and sigmas against diffusers 0.27.2's set_timesteps, for every fixture run whose
// sampler we implement, and the numpy behaviours the schedules lean on.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>

#include "fixture_runs.h"
#include "sampling/noise_schedule.h"
#include "sampling/sampling.h"

namespace diffuse::sampling {
namespace {

using test::all_fixture_runs;
using test::implemented;

// Relative per element, with a floor so entries near 0 (the final sigma, timestep 0) are held to
// an absolute 1e-3 x tolerance.
double max_relative_error(const std::vector<double>& actual, const std::vector<double>& expected) {
  double worst = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    worst = std::max(worst, std::abs(actual[i] - expected[i]) / std::max(std::abs(expected[i]), 1e-3));
  }
  return worst;
}

// The references are float32 values written to JSON; 1e-5 leaves room for one float32 rounding
// of a fractional timestep (sigma_to_t reads float32 log-sigmas) and nothing more.
constexpr double kTolerance = 1e-5;

TEST(SchedulerSchedule, MatchesDiffusersForEveryFixtureRun) {
  int compared = 0;
  double worst_timestep = 0, worst_sigma = 0;
  for (const auto& run : all_fixture_runs()) {
    const auto options = run.options();
    if (!implemented(options.sampler.name())) continue;
    SCOPED_TRACE(run.model + " " + run.id());
    const auto& info = run.json.at("scheduler_info");
    const Schedule schedule = make_schedule(run.config(), options);

    const auto expected_timesteps = info.at("timesteps").get<std::vector<double>>();
    ASSERT_EQ(schedule.timesteps.size(), expected_timesteps.size());
    const double timestep_error = max_relative_error(schedule.timesteps, expected_timesteps);
    EXPECT_LE(timestep_error, kTolerance);
    worst_timestep = std::max(worst_timestep, timestep_error);

    if (info.contains("sigmas")) {
      const auto expected_sigmas = info.at("sigmas").get<std::vector<double>>();
      ASSERT_EQ(schedule.sigmas.size(), expected_sigmas.size());
      const double sigma_error = max_relative_error(schedule.sigmas, expected_sigmas);
      EXPECT_LE(sigma_error, kTolerance);
      worst_sigma = std::max(worst_sigma, sigma_error);
    } else {
      EXPECT_TRUE(schedule.sigmas.empty());
    }
    ++compared;
  }
  std::cout << "compared " << compared << " schedules; worst relative error: timesteps "
            << worst_timestep << ", sigmas " << worst_sigma << "\n";
  EXPECT_GE(compared, 40);  // every euler/euler_a/ddim/dpm++/lms/heun run of both models
}

TEST(SchedulerSchedule, InitNoiseSigmaFollowsSpacing) {
  SchedulerConfig config;  // SD 1.x: scaled_linear, leading, steps_offset 1
  SamplerOptions options;
  options.steps = 10;
  const Schedule leading = make_schedule(config, options);
  // Leading spacing starts below the top of the schedule: sqrt(sigma_max^2 + 1).
  EXPECT_NEAR(leading.init_noise_sigma, std::sqrt(leading.sigmas[0] * leading.sigmas[0] + 1), 1e-5);
  options.timestep_spacing = Spacing::Trailing;
  const Schedule trailing = make_schedule(config, options);
  EXPECT_DOUBLE_EQ(trailing.init_noise_sigma, trailing.sigmas[0]);
  EXPECT_NEAR(trailing.sigmas[0], 14.614645, 1e-5);  // SD's sigma at t = 999
  options.sampler = "ddim";
  EXPECT_DOUBLE_EQ(make_schedule(config, options).init_noise_sigma, 1.0);
  options.sampler = "dpm++2m";
  EXPECT_DOUBLE_EQ(make_schedule(config, options).init_noise_sigma, 1.0);
}

TEST(SchedulerSchedule, ClassDefaultSpacingWhenConfigNamesNone) {
  // SD 1.5's scheduler_config.json names no timestep_spacing: diffusers' Euler then uses
  // linspace (999 ... 0) and DDIM leading.
  const auto config = SchedulerConfig::from_json(
      {{"beta_start", 0.00085}, {"beta_end", 0.012}, {"beta_schedule", "scaled_linear"},
       {"steps_offset", 1}, {"num_train_timesteps", 1000}});
  SamplerOptions options;
  options.steps = 4;
  EXPECT_EQ(make_schedule(config, options).timesteps, (std::vector<double>{999, 666, 333, 0}));
  options.sampler = "ddim";
  EXPECT_EQ(make_schedule(config, options).timesteps, (std::vector<double>{751, 501, 251, 1}));
}

TEST(SchedulerSchedule, TrainedBetasReplaceTheNamedSchedule) {
  SchedulerConfig named;
  named.beta_schedule = "linear";
  named.beta_start = 0.001;
  named.beta_end = 0.02;
  named.num_train_timesteps = 100;
  SchedulerConfig trained = named;
  trained.beta_schedule = "unused";
  for (int i = 0; i < 100; ++i) trained.trained_betas.push_back(0.001 + (0.02 - 0.001) * i / 99.0);
  const auto a = alphas_cumprod(named, false);
  const auto b = alphas_cumprod(trained, false);
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-6);
}

TEST(SchedulerSchedule, ZeroTerminalSnrRescale) {
  SchedulerConfig config;
  config.rescale_betas_zero_snr = true;
  const auto plain = alphas_cumprod(SchedulerConfig{}, false);
  const auto exact = alphas_cumprod(config, false);
  EXPECT_NEAR(exact[0].item<double>(), plain[0].item<double>(), 1e-6);  // first kept
  EXPECT_EQ(exact[-1].item<double>(), 0.0);                            // last SNR zero
  EXPECT_EQ(alphas_cumprod(config, true)[-1].item<double>(), std::pow(2.0, -24));
}

TEST(SchedulerNumpy, RoundsHalfToEvenAndPinsLinspaceEnd) {
  EXPECT_EQ(np_round(0.5), 0.0);
  EXPECT_EQ(np_round(1.5), 2.0);
  EXPECT_EQ(np_round(2.5), 2.0);
  EXPECT_EQ(np_linspace(0, 999, 4), (std::vector<double>{0, 333, 666, 999}));
  EXPECT_EQ(np_arange(1000, 0, -250).size(), 4u);
}

TEST(SchedulerSigmaToT, InvertsTheTrainingSigmas) {
  const auto sigmas = training_sigmas(alphas_cumprod(SchedulerConfig{}, true));
  const auto logs = log_of(sigmas);
  for (const int t : {0, 1, 250, 500, 998, 999}) EXPECT_NEAR(sigma_to_t(sigmas[t], logs), t, 1e-4);
  // Half way in log-sigma is half way in t; beyond the ends it clamps.
  const double mid = std::exp((static_cast<double>(logs[10]) + logs[11]) / 2);
  EXPECT_NEAR(sigma_to_t(mid, logs), 10.5, 1e-4);
  EXPECT_EQ(sigma_to_t(1e-6, logs), 0.0);
  EXPECT_EQ(sigma_to_t(1e6, logs), 999.0);
}

TEST(SchedulerRespacing, ExponentialIsUniformInLogSigma) {
  const auto logs = log_of(training_sigmas(alphas_cumprod(SchedulerConfig{}, true)));
  const auto respaced = respace_sigmas(SigmaSchedule::Exponential, 0.03, 14.6, 6, logs);
  ASSERT_EQ(respaced.sigmas.size(), 6u);
  EXPECT_NEAR(respaced.sigmas.front(), 14.6, 1e-9);
  EXPECT_NEAR(respaced.sigmas.back(), 0.03, 1e-9);
  for (size_t i = 1; i + 1 < respaced.sigmas.size(); ++i) {
    EXPECT_NEAR(std::log(respaced.sigmas[i - 1] / respaced.sigmas[i]), std::log(respaced.sigmas[i] / respaced.sigmas[i + 1]),
                1e-9);
  }
  for (size_t i = 0; i < respaced.sigmas.size(); ++i) {
    EXPECT_NEAR(t_to_sigma(respaced.timesteps[i], logs), respaced.sigmas[i], 1e-4 * respaced.sigmas[i]);
  }
}

TEST(SchedulerRespacing, SgmUniformIsUniformInTimestepWithoutItsLastPoint) {
  const auto sigmas = training_sigmas(alphas_cumprod(SchedulerConfig{}, true));
  const auto logs = log_of(sigmas);
  const auto respaced = respace_sigmas(SigmaSchedule::SgmUniform, sigmas.front(), sigmas.back(), 4, logs);
  // 999 down to 0 in 5 points, the last (t = 0) dropped: the sampler goes to sigma 0 from t = 249.75.
  ASSERT_EQ(respaced.timesteps.size(), 4u);
  EXPECT_NEAR(respaced.timesteps[0], 999, 1e-3);
  EXPECT_NEAR(respaced.timesteps[3], 249.75, 1e-3);
  EXPECT_NEAR(respaced.sigmas[0], sigmas.back(), 1e-4);
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(t_to_sigma(respaced.timesteps[i], logs), respaced.sigmas[i], 1e-9);
}

TEST(SchedulerRespacing, EverySigmaSamplerTakesEverySchedule) {
  for (const auto& [sampler, description] : sampler_names()) {
    if (sampler == "ddim" || sampler == "plms" || sampler == "lcm" || sampler == "tcd") continue;
    for (const auto* schedule : {"karras", "exponential", "sgm_uniform"}) {
      SCOPED_TRACE(sampler + " " + schedule);
      SamplerOptions options;
      options.sampler = sampler;
      options.schedule = parse_sigma_schedule(schedule);
      options.steps = 8;
      const Schedule made = make_schedule(SchedulerConfig{}, options);
      EXPECT_TRUE(std::is_sorted(made.sigmas.rbegin(), made.sigmas.rend()));
      EXPECT_GT(made.sigmas.front(), 5.0);  // from the top of the (leading-spaced) range
    }
  }
}

TEST(SchedulerKarras, EndsAtTheGivenSigmas) {
  const auto sigmas = karras_sigmas(0.03, 14.6, 10);
  ASSERT_EQ(sigmas.size(), 10u);
  EXPECT_NEAR(sigmas.front(), 14.6, 1e-12);
  EXPECT_NEAR(sigmas.back(), 0.03, 1e-12);
  EXPECT_TRUE(std::is_sorted(sigmas.rbegin(), sigmas.rend()));
}

}  // namespace
}  // namespace diffuse::sampling
