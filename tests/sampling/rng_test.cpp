// Random-number parity with the fixtures: a seeded CPU generator reproduces every recorded draw
// bit for bit, and the stochastic samplers draw from it exactly as often, and where, diffusers does.
#include <gtest/gtest.h>

#include <cmath>

#include "fixture_runs.h"
#include "sampling/sampling.h"

namespace diffuse::sampling {
namespace {

using test::all_fixture_runs;
using test::FixtureRun;
using test::seeded_generator;

// The files a run recorded, in the order its generator produced them.
std::vector<std::string> draw_files(const FixtureRun& run) {
  std::vector<std::string> files;
  if (run.json.contains("random_draws")) {
    for (const auto& file : run.json.at("random_draws")) files.push_back(file.get<std::string>());
    return files;
  }
  files.push_back(run.json.at("init_noise").get<std::string>());
  if (run.json.contains("step_noise")) {
    for (const auto& file : run.json.at("step_noise")) files.push_back(file.get<std::string>());
  }
  return files;
}

TEST(RngParity, SeededGeneratorReproducesEveryRecordedDraw) {
  int draws = 0;
  for (const auto& run : all_fixture_runs()) {
    SCOPED_TRACE(run.model + " " + run.id());
    auto generator = seeded_generator(run.json.at("seed").get<uint64_t>());
    for (const auto& file : draw_files(run)) {
      const auto expected = run.tensor(file);
      const auto actual = at::randn(expected.sizes(), generator, at::kFloat);
      ASSERT_TRUE(at::equal(actual, expected)) << file;
      ++draws;
    }
  }
  EXPECT_GT(draws, 100);
}

// Returns zeros as the network output: no model dependence, so only the sampler's noise moves x.
const ModelFn zero_model = [](const at::Tensor& input, double) { return at::zeros_like(input); };

// For each stochastic run: sample() with the run's seed must consume exactly the scheduler draws
// the run recorded, no more and no fewer.
TEST(RngParity, StochasticSamplersDrawAsOftenAsDiffusers) {
  int checked = 0;
  for (const auto& run : all_fixture_runs()) {
    const auto options = run.options();
    if (!test::implemented(options.sampler.name()) || !run.json.contains("step_noise")) continue;
    SCOPED_TRACE(run.model + " " + run.id());
    const auto seed = run.json.at("seed").get<uint64_t>();
    auto generator = seeded_generator(seed);
    const auto noise = at::randn({1, 4, 32, 32}, generator, at::kFloat);
    sample(zero_model, run.config(), options, noise, generator);

    auto reference = seeded_generator(seed);
    const size_t recorded = 1 + run.json.at("step_noise").size();
    for (size_t i = 0; i < recorded; ++i) at::randn({1, 4, 32, 32}, reference, at::kFloat);
    EXPECT_TRUE(at::equal(at::randn({8}, generator, at::kFloat), at::randn({8}, reference, at::kFloat)));
    ++checked;
  }
  EXPECT_GE(checked, 10);  // euler_a (leading, trailing), ddim eta 1, dpm++2m_sde (+karras), 2 models
}

// --prediction overrides the config: an epsilon config told "v_prediction" samples exactly as a
// v-prediction config does.
TEST(PredictionOverride, ReplacesTheConfigsPredictionType) {
  const ModelFn model = [](const at::Tensor& input, double t) { return input * static_cast<float>(0.5 + t / 2000); };
  SchedulerConfig eps_config;
  SchedulerConfig v_config;
  v_config.prediction = Prediction::VPrediction;
  SamplerOptions options;
  options.steps = 5;
  auto noise_generator = seeded_generator(11);
  const auto noise = at::randn({1, 4, 8, 8}, noise_generator, at::kFloat);
  auto first = seeded_generator(12);
  const auto native = sample(model, v_config, options, noise, first);
  options.prediction = Prediction::VPrediction;
  auto second = seeded_generator(12);
  const auto overridden = sample(model, eps_config, options, noise, second);
  EXPECT_TRUE(at::equal(native, overridden));
  options.prediction = Prediction::Epsilon;
  auto third = seeded_generator(12);
  EXPECT_FALSE(at::equal(native, sample(model, v_config, options, noise, third)));
}

// With a zero epsilon the Euler ancestral step only adds sigma_up x its draw, so the final latents
// are init_noise_sigma x noise + sum of sigma_up x step_noise: the recorded draws in their places.
TEST(RngParity, EulerAncestralAddsEachRecordedDrawAtItsStep) {
  for (const auto& run : all_fixture_runs()) {
    const auto options = run.options();
    if (options.sampler != "euler_a" || run.json.at("scheduler_info").at("config").at("prediction_type") != "epsilon") {
      continue;
    }
    SCOPED_TRACE(run.model + " " + run.id());
    const auto config = run.config();
    auto generator = seeded_generator(run.json.at("seed").get<uint64_t>());
    const auto noise = at::randn({1, 4, 32, 32}, generator, at::kFloat);
    const auto actual = sample(zero_model, config, options, noise, generator).to(at::kDouble);

    const Schedule schedule = make_schedule(config, options);
    auto expected = run.tensor(run.json.at("init_noise")).to(at::kDouble) * schedule.init_noise_sigma;
    const auto& step_noise = run.json.at("step_noise");
    for (size_t i = 0; i < step_noise.size(); ++i) {
      const double from = schedule.sigmas[i], to = schedule.sigmas[i + 1];
      const double sigma_up = std::sqrt(to * to * (from * from - to * to) / (from * from));
      expected += run.tensor(step_noise[i].get<std::string>()).to(at::kDouble) * sigma_up;
    }
    EXPECT_LT(((actual - expected).abs().max() / expected.abs().max()).item<double>(), 1e-6);
  }
}

}  // namespace
}  // namespace diffuse::sampling
