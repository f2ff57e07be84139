// Turns the network's raw output into the predicted clean latents (x0) and noise for either
// prediction type. diffusers' schedulers hold their sample in one of two parameterisations, so there
// are two forms; each keeps the operation order of the diffusers schedulers that use it, so results
// agree to the last bit where the arithmetic allows.
#pragma once
#include <ATen/ATen.h>

#include "sampling/sampling.h"

namespace diffuse::sampling {

// k-diffusion (variance exploding) form used by euler, euler_a, lms, heun: x = x0 + sigma * eps,
// and the model saw x / sqrt(sigma^2 + 1).
at::Tensor denoised_from_sigma(Prediction prediction, const at::Tensor& model_output,
                               const at::Tensor& x, float sigma);

// Variance preserving form used by ddim and the DPM-Solver family: x = alpha * x0 + sigma * eps
// with alpha^2 + sigma^2 = 1, and the model saw x itself.
at::Tensor denoised_from_alpha_sigma(Prediction prediction, const at::Tensor& model_output,
                                     const at::Tensor& x, float alpha, float sigma);
at::Tensor noise_from_alpha_sigma(Prediction prediction, const at::Tensor& model_output,
                                  const at::Tensor& x, float alpha, float sigma);

}  // namespace diffuse::sampling
