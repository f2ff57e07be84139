// DEIS (Zhang & Chen 2022): diffusers' DEISMultistepScheduler with its defaults: solver_order 2,
// "deis" with the log-rho polynomial, lower_order_final. It integrates the noise prediction in
// rho = sigma / alpha, fitting a line in log(rho) through the last two predictions. Below 15 steps
// the last step is first order. The schedule ends at the smallest trained sigma, not 0.
#include <cmath>

#include "sampling/denoiser.h"
#include "sampling/noise_schedule.h"
#include "sampling/sampler.h"

namespace diffuse::sampling {

namespace {

// Integral in t of the Lagrange basis (log t - log c) / (log b - log c): diffusers' ind_fn.
float basis_integral(float t, float b, float c) {
  return t * (-std::log(c) + std::log(t) - 1.0f) / (std::log(b) - std::log(c));
}

class DeisSampler final : public Sampler {
 public:
  std::string name() const override { return "deis"; }
  std::string display_name() const override { return "DEIS"; }
  std::string description() const override { return "DEIS, second order exponential integrator multistep"; }

  LatentFrame frame() const override { return LatentFrame::VariancePreserving; }

  Schedule make_schedule(const SchedulerConfig& config, const SamplerOptions& options) const override {
    return dpm_solver_schedule(config, resolve_spacing(config, options, Spacing::Linspace),
                               resolve_sigma_schedule(config, options), options.steps, /*final_sigma_min=*/true);
  }

  at::Tensor run(const RunContext& context, at::Tensor x) const override {
    const auto& sigmas = context.schedule.sigmas;
    const auto& timesteps = context.schedule.timesteps;
    const int count = static_cast<int>(timesteps.size());
    at::Tensor previous_noise;
    for (int k = context.first_step; k < count; ++k) {
      const VpLevel here = vp_level(sigmas[k]);
      const VpLevel next = vp_level(sigmas[k + 1]);
      const at::Tensor output = context.model(x, timesteps[k]);
      const at::Tensor denoised = denoised_from_alpha_sigma(context.config.prediction, output, x, here.alpha, here.sigma);
      // DEIS steps on the noise implied by the (possibly converted) x0.
      const at::Tensor noise = (x - denoised * here.alpha) / here.sigma;

      const bool lower_order_final = k == count - 1 && count < 15;
      if (!previous_noise.defined() || lower_order_final) {
        const float h = next.lambda - here.lambda;
        x = x * (next.alpha / here.alpha) - noise * (next.sigma * (std::exp(h) - 1.0f));
      } else {
        const VpLevel before = vp_level(sigmas[k - 1]);
        const float rho_t = next.sigma / next.alpha;
        const float rho_s0 = here.sigma / here.alpha;
        const float rho_s1 = before.sigma / before.alpha;
        const float coef1 = basis_integral(rho_t, rho_s0, rho_s1) - basis_integral(rho_s0, rho_s0, rho_s1);
        const float coef2 = basis_integral(rho_t, rho_s1, rho_s0) - basis_integral(rho_s0, rho_s1, rho_s0);
        x = (x / here.alpha + noise * coef1 + previous_noise * coef2) * next.alpha;
      }
      previous_noise = noise;
      x = context.finish_step(k, x, denoised);
    }
    return x;
  }
};

}  // namespace

std::unique_ptr<Sampler> make_deis_sampler() { return std::make_unique<DeisSampler>(); }

}  // namespace diffuse::sampling
