// The tcd sampler (diffusers' TCDScheduler) where its result is known in closed form. No diffusers
// run of TCD is among the fixtures; the Gaussian sanity test (sanity_test.cpp) covers its noise.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "sampling/noise_schedule.h"
#include "sampling/sampling.h"

namespace diffuse::sampling {
namespace {

SamplerOptions tcd(int steps, double gamma) {
  SamplerOptions options;
  options.sampler = "tcd";
  options.steps = steps;
  options.eta = gamma;
  return options;
}

// The exact network for data that is one point `x0`: eps = (x_t - sqrt(a) x0) / sqrt(1 - a).
ModelFn single_point_model(const SchedulerConfig& config, const at::Tensor& x0) {
  const at::Tensor alphas = alphas_cumprod(config, false);
  return [alphas, x0, prediction = config.prediction](const at::Tensor& x_t, double t) {
    const double a = alphas[static_cast<int64_t>(t)].item<double>();
    const at::Tensor eps = (x_t - x0 * std::sqrt(a)) / std::sqrt(1 - a);
    return prediction == Prediction::Epsilon ? eps : eps * std::sqrt(a) - x0 * std::sqrt(1 - a);
  };
}

TEST(TcdSampler, TakesLcmsTimesteps) {
  const SchedulerConfig config;
  for (const int steps : {1, 2, 4, 8}) {
    auto lcm = tcd(steps, 0);
    lcm.sampler = "lcm";
    EXPECT_EQ(make_schedule(config, tcd(steps, 0)).timesteps, make_schedule(config, lcm).timesteps) << steps;
  }
  EXPECT_EQ(make_schedule(config, tcd(4, 0.3)).timesteps, (std::vector<double>{999, 759, 499, 259}));
  EXPECT_EQ(make_schedule(config, tcd(4, 0)).init_noise_sigma, 1.0);
}

// At gamma 0 each step is DDIM's: with the exact network the sample stays on its noise's trajectory
// x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps0, and ends at timestep 0's level of it (not at x0 itself).
TEST(TcdSampler, DeterministicAtGammaZeroAlongTheTrajectory) {
  for (const auto prediction : {Prediction::Epsilon, Prediction::VPrediction}) {
    SchedulerConfig config;
    config.prediction = prediction;
    auto generator = at::make_generator<at::CPUGeneratorImpl>(7);
    const at::Tensor x0 = at::randn({2, 4, 8, 8}, generator) * 0.8;
    const at::Tensor noise = at::randn({2, 4, 8, 8}, generator);
    const auto options = tcd(4, 0);
    const at::Tensor alphas = alphas_cumprod(config, false);
    const double a_first = alphas[999].item<double>();
    const double a0 = alphas[0].item<double>();
    // sample() starts from the noise itself (init_noise_sigma 1): its eps0 with respect to x0.
    const at::Tensor eps0 = (noise - x0 * std::sqrt(a_first)) / std::sqrt(1 - a_first);
    int steps_seen = 0;
    const auto latents = sample(single_point_model(config, x0), config, options, noise, generator,
                                [&](const StepInfo& step) {
                                  EXPECT_LT((step.denoised - x0).abs().max().item<double>(), 2e-5);
                                  ++steps_seen;
                                });
    EXPECT_EQ(steps_seen, 4);
    const at::Tensor expected = x0 * std::sqrt(a0) + eps0 * std::sqrt(1 - a0);
    EXPECT_LT((latents - expected).abs().max().item<double>(), 2e-5);
  }
}

// Where LCM's timesteps are DDIM's trailing ones (steps dividing 50), gamma 0 is DDIM without
// clipping, stepping to alphas_cumprod[0] at the end.
TEST(TcdSampler, AtGammaZeroIsTrailingDdimOnTheSameTimesteps) {
  SchedulerConfig config;
  config.clip_sample = false;
  config.set_alpha_to_one = false;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(11);
  const at::Tensor x0 = at::randn({1, 4, 8, 8}, generator);
  const at::Tensor noise = at::randn({1, 4, 8, 8}, generator);
  for (const int steps : {5, 10}) {
    auto ddim = tcd(steps, 0);
    ddim.sampler = "ddim";
    ddim.timestep_spacing = Spacing::Trailing;
    EXPECT_EQ(make_schedule(config, tcd(steps, 0)).timesteps, make_schedule(config, ddim).timesteps);
    const auto model = single_point_model(config, x0 * 0.5);
    const auto from_tcd = sample(model, config, tcd(steps, 0), noise, generator);
    const auto from_ddim = sample(model, config, ddim, noise, generator);
    EXPECT_LT((from_tcd - from_ddim).abs().max().item<double>(), 1e-6) << steps;
  }
}

// gamma re-noises between steps with fresh draws (another seed, another image), never after the last
// step: one step is the same whatever the seed and gamma.
TEST(TcdSampler, GammaAddsNoiseBetweenStepsOnly) {
  const SchedulerConfig config;
  const at::Tensor x0 = at::full({1, 4, 8, 8}, 0.5);
  const at::Tensor noise = at::randn({1, 4, 8, 8}, at::make_generator<at::CPUGeneratorImpl>(1));
  const auto run = [&](int steps, double gamma, uint64_t seed) {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
    return sample(single_point_model(config, x0), config, tcd(steps, gamma), noise, generator);
  };
  EXPECT_TRUE(at::equal(run(1, 0.3, 1), run(1, 0.3, 2)));
  EXPECT_TRUE(at::equal(run(1, 0.3, 1), run(1, 1.0, 1)));
  EXPECT_TRUE(at::equal(run(4, 0, 1), run(4, 0, 2)));
  EXPECT_FALSE(at::allclose(run(4, 0.3, 1), run(4, 0.3, 2)));
  // With gamma 1 every step goes to x0 (timestep 0's level) and re-noises: the single point's
  // network brings each step back to it, so the result is x0 at timestep 0's level with the last
  // step's noise, whatever it was: close to x0 (sqrt(1 - a_0) = 0.029 of the noise).
  const double a0 = alphas_cumprod(config, false)[0].item<double>();
  EXPECT_LT((run(4, 1.0, 3) - x0 * std::sqrt(a0)).abs().max().item<double>(), 0.2);
}

}  // namespace
}  // namespace diffuse::sampling
