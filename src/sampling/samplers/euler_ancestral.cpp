// Euler ancestral: diffusers' EulerAncestralDiscreteScheduler. Each step goes down to sigma_down
// with an Euler step, then adds fresh noise of sigma_up, so that sigma_down^2 + sigma_up^2 equals
// the next sigma^2. The noise is drawn at every step, the last included (where sigma_up is 0), as
// diffusers does: that keeps later draws from the generator in step with it.
#include <algorithm>
#include <cmath>

#include "sampling/denoiser.h"
#include "sampling/noise_schedule.h"
#include "sampling/sampler.h"

namespace diffuse::sampling {

namespace {

class EulerAncestralSampler final : public Sampler {
 public:
  std::string name() const override { return "euler_a"; }
  std::string display_name() const override { return "Euler a"; }
  std::string description() const override { return "Euler ancestral, adds fresh noise each step"; }
  Schedule make_schedule(const SchedulerConfig& config, const SamplerOptions& options) const override {
    // diffusers 0.27's EulerAncestralDiscreteScheduler has no use_karras_sigmas and ignores one in
    // the config, so only a schedule named on the command line respaces its sigmas.
    const SigmaSchedule sigma_schedule = options.schedule == SigmaSchedule::Default
                                             ? SigmaSchedule::Default
                                             : resolve_sigma_schedule(config, options);
    return discrete_sigma_schedule(config, resolve_spacing(config, options, Spacing::Linspace),
                                   sigma_schedule, options.steps);
  }

  at::Tensor run(const RunContext& context, at::Tensor x) const override {
    const auto& sigmas = context.schedule.sigmas;
    const auto& timesteps = context.schedule.timesteps;
    for (size_t i = context.first_step; i < timesteps.size(); ++i) {
      const auto sigma = static_cast<float>(sigmas[i]);
      const auto sigma_to = static_cast<float>(sigmas[i + 1]);
      const at::Tensor model_output = context.model(x / std::sqrt(sigma * sigma + 1.0f), timesteps[i]);
      const at::Tensor denoised = denoised_from_sigma(context.config.prediction, model_output, x, sigma);

      const float sigma_up =
          std::sqrt(sigma_to * sigma_to * (sigma * sigma - sigma_to * sigma_to) / (sigma * sigma));
      // Rounding can leave the difference a hair below 0, where diffusers would give NaN.
      const float sigma_down = std::sqrt(std::max(0.0f, sigma_to * sigma_to - sigma_up * sigma_up));
      const at::Tensor derivative = (x - denoised) / sigma;
      x = x + derivative * (sigma_down - sigma);
      x = x + context.draw_noise(x) * sigma_up;
      x = context.finish_step(static_cast<int>(i), x, denoised);
    }
    return x;
  }
};

}  // namespace

std::unique_ptr<Sampler> make_euler_ancestral_sampler() {
  return std::make_unique<EulerAncestralSampler>();
}

}  // namespace diffuse::sampling
