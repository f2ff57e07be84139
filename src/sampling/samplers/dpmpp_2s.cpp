// DPM-Solver++(2S), singlestep second order (Lu et al. 2022), in two forms:
//  - dpm++2s: diffusers' DPMSolverSinglestepScheduler (solver_order 2, dpmsolver++, midpoint,
//    lower_order_final, final sigma 0). Steps come in pairs over the schedule's own sigmas: a first
//    order step to the pair's middle sigma, then a second order step over the whole pair from the
//    pair's start, using both predictions. The last step is first order (it lands on sigma 0).
//  - dpm++2s_a: k-diffusion's sample_dpmpp_2s_ancestral (no diffusers twin, as A1111's
//    "DPM++ 2S a"): each step goes to sigma_down with a midpoint evaluated at the log-sigma middle,
//    then adds fresh noise of sigma_up. Two model calls per step; the last step is a plain Euler step.
#include <algorithm>
#include <cmath>
#include <vector>

#include "sampling/denoiser.h"
#include "sampling/noise_schedule.h"
#include "sampling/sampler.h"

namespace diffuse::sampling {

namespace {

// diffusers' get_order_list for order 2 with lower_order_final: 1, 2, 1, 2, ..., ending in 1.
std::vector<int> singlestep_orders(int steps) {
  std::vector<int> orders;
  const int pairs = steps % 2 == 0 ? steps / 2 - 1 : steps / 2;
  for (int i = 0; i < pairs; ++i) orders.insert(orders.end(), {1, 2});
  while (static_cast<int>(orders.size()) < steps) orders.push_back(1);
  return orders;
}

class DpmSolverPlusPlus2S final : public Sampler {
 public:
  std::string name() const override { return "dpm++2s"; }
  std::string display_name() const override { return "DPM++ 2S"; }
  std::string description() const override { return "DPM-Solver++(2S), second order singlestep"; }
  LatentFrame frame() const override { return LatentFrame::VariancePreserving; }

  Schedule make_schedule(const SchedulerConfig& config, const SamplerOptions& options) const override {
    // The singlestep scheduler always spaces like linspace, whatever the config says; only an
    // explicit --timestep-spacing changes that.
    const Spacing spacing = options.timestep_spacing.value_or(Spacing::Linspace);
    return dpm_solver_schedule(config, spacing, resolve_sigma_schedule(config, options), options.steps);
  }

  at::Tensor run(const RunContext& context, at::Tensor x) const override {
    const auto& sigmas = context.schedule.sigmas;
    const auto& timesteps = context.schedule.timesteps;
    const auto orders = singlestep_orders(static_cast<int>(timesteps.size()));
    at::Tensor previous_denoised;
    at::Tensor pair_start;  // x where the current pair of steps began
    for (size_t i = context.first_step; i < timesteps.size(); ++i) {
      const VpLevel here = vp_level(sigmas[i]);
      const VpLevel next = vp_level(sigmas[i + 1]);
      const at::Tensor output = context.model(x, timesteps[i]);
      const at::Tensor denoised = denoised_from_alpha_sigma(context.config.prediction, output, x, here.alpha, here.sigma);
      const int order = previous_denoised.defined() ? orders[i] : 1;
      if (order == 1) {
        pair_start = x;
        const float h = next.lambda - here.lambda;
        x = pair_start * (next.sigma / here.sigma) - denoised * (next.alpha * (std::exp(-h) - 1.0f));
      } else {
        const VpLevel start = vp_level(sigmas[i - 1]);
        const float h = next.lambda - start.lambda;
        const float r0 = (here.lambda - start.lambda) / h;
        const at::Tensor d1 = (denoised - previous_denoised) * (1.0f / r0);
        const float decay = next.alpha * (std::exp(-h) - 1.0f);
        x = pair_start * (next.sigma / start.sigma) - previous_denoised * decay - d1 * (0.5f * decay);
      }
      previous_denoised = denoised;
      x = context.finish_step(static_cast<int>(i), x, denoised);
    }
    return x;
  }
};

class DpmSolverPlusPlus2SAncestral final : public Sampler {
 public:
  std::string name() const override { return "dpm++2s_a"; }
  std::string display_name() const override { return "DPM++ 2S a"; }
  std::string description() const override {
    return "DPM-Solver++(2S) ancestral (k-diffusion), two model calls per step, fresh noise each step";
  }

  Schedule make_schedule(const SchedulerConfig& config, const SamplerOptions& options) const override {
    return discrete_sigma_schedule(config, resolve_spacing(config, options, Spacing::Linspace),
                                   resolve_sigma_schedule(config, options), options.steps);
  }

  at::Tensor run(const RunContext& context, at::Tensor x) const override {
    const SigmaDenoiser denoise(context.model, context.config);
    const auto& sigmas = context.schedule.sigmas;
    for (size_t i = context.first_step; i + 1 < sigmas.size(); ++i) {
      const double sigma = sigmas[i];
      const at::Tensor denoised = denoise(x, sigma);
      const auto [sigma_down, sigma_up] = ancestral_step(sigma, sigmas[i + 1]);
      if (sigma_down == 0) {
        x = x + (x - denoised) / static_cast<float>(sigma) * static_cast<float>(sigma_down - sigma);
      } else {
        // In t = -log(sigma): a first order step to the middle, a model call there, then the
        // whole step with the middle's prediction.
        const double t = -std::log(sigma);
        const double h = -std::log(sigma_down) - t;
        const double sigma_mid = std::exp(-(t + h / 2));
        const at::Tensor x_mid = x * static_cast<float>(sigma_mid / sigma) - denoised * static_cast<float>(std::expm1(-h / 2));
        const at::Tensor denoised_mid = denoise(x_mid, sigma_mid);
        x = x * static_cast<float>(sigma_down / sigma) - denoised_mid * static_cast<float>(std::expm1(-h));
      }
      if (sigmas[i + 1] > 0) x = x + context.draw_noise(x) * static_cast<float>(sigma_up);
      x = context.finish_step(static_cast<int>(i), x, denoised);
    }
    return x;
  }
};

}  // namespace

std::unique_ptr<Sampler> make_dpmpp_2s_sampler() { return std::make_unique<DpmSolverPlusPlus2S>(); }
std::unique_ptr<Sampler> make_dpmpp_2s_ancestral_sampler() {
  return std::make_unique<DpmSolverPlusPlus2SAncestral>();
}

}  // namespace diffuse::sampling
