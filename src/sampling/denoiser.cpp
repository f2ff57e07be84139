#include "sampling/denoiser.h"

#include <algorithm>
#include <cmath>

#include "sampling/noise_schedule.h"

namespace diffuse::sampling {

at::Tensor denoised_from_sigma(Prediction prediction, const at::Tensor& model_output,
                               const at::Tensor& x, float sigma) {
  if (prediction == Prediction::Epsilon) return x - model_output * sigma;
  // v = alpha * eps - sigma_vp * x0 in the model's (scaled) frame; rewritten for x in this frame.
  const float variance = sigma * sigma + 1.0f;
  return model_output * (-sigma / std::sqrt(variance)) + x / variance;
}

at::Tensor denoised_from_alpha_sigma(Prediction prediction, const at::Tensor& model_output,
                                     const at::Tensor& x, float alpha, float sigma) {
  if (prediction == Prediction::Epsilon) return (x - model_output * sigma) / alpha;
  return x * alpha - model_output * sigma;
}

at::Tensor noise_from_alpha_sigma(Prediction prediction, const at::Tensor& model_output,
                                  const at::Tensor& x, float alpha, float sigma) {
  if (prediction == Prediction::Epsilon) return model_output;
  return model_output * alpha + x * sigma;
}

VpLevel vp_level(double k_sigma) {
  const auto s = static_cast<float>(k_sigma);
  const float alpha = 1.0f / std::sqrt(s * s + 1.0f);
  const float sigma = s * alpha;
  return {alpha, sigma, std::log(alpha) - std::log(sigma)};
}

AncestralStep ancestral_step(double from, double to) {
  const double up = std::min(to, std::sqrt(to * to * (from * from - to * to) / (from * from)));
  return {std::sqrt(to * to - up * up), up};
}

SigmaDenoiser::SigmaDenoiser(const ModelFn& model, const SchedulerConfig& config)
    : model_(model),
      prediction_(config.prediction),
      log_sigmas_(log_of(training_sigmas(alphas_cumprod(config, /*sigma_safe=*/true)))) {}

at::Tensor SigmaDenoiser::operator()(const at::Tensor& x, double sigma) const {
  const auto s = static_cast<float>(sigma);
  const double timestep = static_cast<float>(sigma_to_t(sigma, log_sigmas_));
  const at::Tensor output = model_(x / std::sqrt(s * s + 1.0f), timestep);
  return denoised_from_sigma(prediction_, output, x, s);
}

}  // namespace diffuse::sampling
