// Euler (Karras et al. 2022, Algorithm 2 without churn): diffusers' EulerDiscreteScheduler.
#include <cmath>

#include "sampling/denoiser.h"
#include "sampling/noise_schedule.h"
#include "sampling/sampler.h"

namespace diffuse::sampling {

namespace {

class EulerSampler final : public Sampler {
 public:
  std::string name() const override { return "euler"; }
  std::string display_name() const override { return "Euler"; }
  std::string description() const override { return "Euler, first order ODE solver (k-diffusion)"; }

  Schedule make_schedule(const SchedulerConfig& config, const SamplerOptions& options) const override {
    return discrete_sigma_schedule(config, resolve_spacing(config, options, Spacing::Linspace),
                                   resolve_sigma_schedule(config, options), options.steps);
  }

  at::Tensor run(const RunContext& context, at::Tensor x) const override {
    const auto& sigmas = context.schedule.sigmas;
    const auto& timesteps = context.schedule.timesteps;
    for (size_t i = context.first_step; i < timesteps.size(); ++i) {
      const auto sigma = static_cast<float>(sigmas[i]);
      const auto sigma_next = static_cast<float>(sigmas[i + 1]);
      const at::Tensor model_output = context.model(x / std::sqrt(sigma * sigma + 1.0f), timesteps[i]);
      const at::Tensor denoised = denoised_from_sigma(context.config.prediction, model_output, x, sigma);
      const at::Tensor derivative = (x - denoised) / sigma;
      x = x + derivative * (sigma_next - sigma);
      x = context.finish_step(static_cast<int>(i), x, denoised);
    }
    return x;
  }
};

}  // namespace

std::unique_ptr<Sampler> make_euler_sampler() { return std::make_unique<EulerSampler>(); }

}  // namespace diffuse::sampling
