// Linear multistep (order 4): diffusers' LMSDiscreteScheduler. Each step integrates the Lagrange
// polynomial through the last (up to) four derivatives over [sigma_i, sigma_i+1].
#include <algorithm>
#include <cmath>
#include <deque>

#include "sampling/denoiser.h"
#include "sampling/noise_schedule.h"
#include "sampling/sampler.h"

namespace diffuse::sampling {

namespace {

constexpr int kOrder = 4;  // the pipeline never passes `order`, so diffusers' default holds

// Integral over [sigmas[i], sigmas[i+1]] of the Lagrange basis polynomial that is 1 at
// sigmas[i - which] and 0 at the other sigmas[i - k], k < order. diffusers asks scipy's quad for it;
// the integrand is a polynomial of degree < 4, which 3-point Gauss-Legendre integrates exactly.
double lms_coefficient(const std::vector<double>& sigmas, int order, int i, int which) {
  auto basis = [&](double tau) {
    double product = 1.0;
    for (int k = 0; k < order; ++k) {
      if (k == which) continue;
      product *= (tau - sigmas[i - k]) / (sigmas[i - which] - sigmas[i - k]);
    }
    return product;
  };
  const double a = sigmas[i];
  const double b = sigmas[i + 1];
  const double half = (b - a) / 2;
  const double mid = (a + b) / 2;
  const double node = std::sqrt(0.6);
  return half * (5.0 / 9 * basis(mid - half * node) + 8.0 / 9 * basis(mid) +
                 5.0 / 9 * basis(mid + half * node));
}

class LmsSampler final : public Sampler {
 public:
  std::string name() const override { return "lms"; }
  std::string display_name() const override { return "LMS"; }
  std::string description() const override { return "Linear multistep, order 4 (k-diffusion)"; }

  Schedule make_schedule(const SchedulerConfig& config, const SamplerOptions& options) const override {
    return discrete_sigma_schedule(config, resolve_spacing(config, options, Spacing::Linspace),
                                   resolve_sigma_schedule(config, options), options.steps);
  }

  at::Tensor run(const RunContext& context, at::Tensor x) const override {
    const auto& sigmas = context.schedule.sigmas;
    const auto& timesteps = context.schedule.timesteps;
    std::deque<at::Tensor> derivatives;  // oldest first
    for (size_t step = context.first_step; step < timesteps.size(); ++step) {
      const int i = static_cast<int>(step);
      const auto sigma = static_cast<float>(sigmas[i]);
      const at::Tensor model_output = context.model(x / std::sqrt(sigma * sigma + 1.0f), timesteps[i]);
      const at::Tensor denoised = denoised_from_sigma(context.config.prediction, model_output, x, sigma);
      derivatives.push_back((x - denoised) / sigma);
      if (derivatives.size() > kOrder) derivatives.pop_front();

      const int order = std::min(i + 1, kOrder);
      // Newest derivative first, each weighted by its coefficient (a float32 multiply, as in
      // diffusers where the Python float coefficient meets a float32 tensor). A run that starts
      // part-way (img2img) has fewer derivatives than the order: diffusers zips the two lists, so
      // only the first coefficients apply.
      const int terms = std::min(order, static_cast<int>(derivatives.size()));
      at::Tensor update;
      for (int k = 0; k < terms; ++k) {
        const auto& derivative = derivatives[derivatives.size() - 1 - k];
        const at::Tensor term = derivative * lms_coefficient(sigmas, order, i, k);
        update = k == 0 ? term : update + term;
      }
      x = x + update;
      x = context.finish_step(i, x, denoised);
    }
    return x;
  }
};

}  // namespace

std::unique_ptr<Sampler> make_lms_sampler() { return std::make_unique<LmsSampler>(); }

}  // namespace diffuse::sampling
