#include "sampling/denoiser.h"

#include <cmath>

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

}  // namespace diffuse::sampling
