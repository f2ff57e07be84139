// DPM-Solver++(2M) and its SDE variant (Lu et al. 2022): diffusers' DPMSolverMultistepScheduler
// with solver_order 2, midpoint solver, lower_order_final, final sigma 0, algorithm_type
// "dpmsolver++" or "sde-dpmsolver++". Both share the schedule and the multistep bookkeeping, so they
// live in one file and register under two names.
//
// The sample is held in the variance-preserving frame (the model sees it unscaled). The first step
// is first order (no history yet) and so is the last, because it lands on sigma 0 where the second
// order formula divides by an infinite log-SNR step.
#include <cmath>

#include "sampling/denoiser.h"
#include "sampling/noise_schedule.h"
#include "sampling/sampler.h"

namespace diffuse::sampling {

namespace {

using NoiseLevel = VpLevel;
NoiseLevel level_at(double k_sigma) { return vp_level(k_sigma); }

class DpmSolverPlusPlus2M final : public Sampler {
 public:
  explicit DpmSolverPlusPlus2M(bool sde) : sde_(sde) {}

  std::string name() const override { return sde_ ? "dpm++2m_sde" : "dpm++2m"; }
  std::string display_name() const override { return sde_ ? "DPM++ 2M SDE" : "DPM++ 2M"; }
  std::string description() const override {
    return sde_ ? "DPM-Solver++(2M) SDE, second order multistep with fresh noise each step"
                : "DPM-Solver++(2M), second order multistep";
  }

  LatentFrame frame() const override { return LatentFrame::VariancePreserving; }

  Schedule make_schedule(const SchedulerConfig& config, const SamplerOptions& options) const override {
    return dpm_solver_schedule(config, resolve_spacing(config, options, Spacing::Linspace),
                               resolve_sigma_schedule(config, options), options.steps);
  }

  at::Tensor run(const RunContext& context, at::Tensor x) const override {
    const auto& sigmas = context.schedule.sigmas;
    const auto& timesteps = context.schedule.timesteps;
    const size_t count = timesteps.size();
    at::Tensor previous_denoised;  // the model's x0 from the step before, once there is one

    for (size_t i = context.first_step; i < count; ++i) {
      const NoiseLevel here = level_at(sigmas[i]);
      const NoiseLevel next = level_at(sigmas[i + 1]);
      const at::Tensor model_output = context.model(x, timesteps[i]);
      const at::Tensor denoised = denoised_from_alpha_sigma(context.config.prediction, model_output,
                                                            x, here.alpha, here.sigma);
      // Drawn before the update and at every step, the last included, as diffusers does.
      const at::Tensor noise = sde_ ? context.draw_noise(model_output) : at::Tensor();

      const float h = next.lambda - here.lambda;
      const bool first_order = !previous_denoised.defined() || i + 1 == count;
      at::Tensor correction;  // D1 = (m0 - m1) / r0, the finite-difference term of second order
      if (!first_order) {
        const NoiseLevel before = level_at(sigmas[i - 1]);
        const float r0 = (here.lambda - before.lambda) / h;
        correction = (denoised - previous_denoised) * (1.0f / r0);
      }
      x = sde_ ? sde_update(x, denoised, correction, noise, here, next, h)
               : ode_update(x, denoised, correction, here, next, h);
      previous_denoised = denoised;
      x = context.finish_step(static_cast<int>(i), x, denoised);
    }
    return x;
  }

 private:
  static at::Tensor ode_update(const at::Tensor& x, const at::Tensor& d0, const at::Tensor& d1,
                               const NoiseLevel& here, const NoiseLevel& next, float h) {
    const float decay = next.alpha * (std::exp(-h) - 1.0f);
    at::Tensor result = x * (next.sigma / here.sigma) - d0 * decay;
    if (d1.defined()) result = result - d1 * (0.5f * decay);
    return result;
  }

  static at::Tensor sde_update(const at::Tensor& x, const at::Tensor& d0, const at::Tensor& d1,
                               const at::Tensor& noise, const NoiseLevel& here,
                               const NoiseLevel& next, float h) {
    const float growth = next.alpha * (1.0f - std::exp(-2.0f * h));
    at::Tensor result = x * (next.sigma / here.sigma * std::exp(-h)) + d0 * growth;
    if (d1.defined()) result = result + d1 * (0.5f * growth);
    return result + noise * (next.sigma * std::sqrt(1.0f - std::exp(-2.0f * h)));
  }

  bool sde_;
};

}  // namespace

std::unique_ptr<Sampler> make_dpmpp_2m_sampler() {
  return std::make_unique<DpmSolverPlusPlus2M>(false);
}
std::unique_ptr<Sampler> make_dpmpp_2m_sde_sampler() {
  return std::make_unique<DpmSolverPlusPlus2M>(true);
}

}  // namespace diffuse::sampling
