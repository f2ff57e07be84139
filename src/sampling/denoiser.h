// Turns the network's raw output into the predicted clean latents (x0) and noise for either
// prediction type. diffusers' schedulers hold their sample in one of two parameterisations, so there
// are two forms; each keeps the operation order of the diffusers schedulers that use it, so results
// agree to the last bit where the arithmetic allows.
#pragma once
#include <vector>

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

// One k-diffusion sigma in the variance preserving quantities the DPM-Solver family steps with,
// each float32 as diffusers' _sigma_to_alpha_sigma_t computes it.
struct VpLevel {
  float alpha;   // 1 / sqrt(sigma^2 + 1)
  float sigma;   // sigma * alpha, the VP noise scale
  float lambda;  // log(alpha) - log(sigma): half the log-SNR; +inf at sigma 0
};
VpLevel vp_level(double k_sigma);

// k-diffusion's get_ancestral_step with eta 1: going from sigma `from` to `to`, step
// deterministically down to `down`, then add fresh noise of `up`, with down^2 + up^2 = to^2.
struct AncestralStep {
  double down;
  double up;
};
AncestralStep ancestral_step(double from, double to);

// k-diffusion's discrete denoiser (DiscreteEpsDDPMDenoiser / DiscreteVDDPMDenoiser): x0 predicted at
// any sigma, the model called at the fractional timestep whose interpolated log-sigma is log(sigma).
// For samplers with no diffusers twin that evaluate between the schedule's sigmas.
class SigmaDenoiser {
 public:
  SigmaDenoiser(const ModelFn& model, const SchedulerConfig& config);
  at::Tensor operator()(const at::Tensor& x, double sigma) const;

 private:
  const ModelFn& model_;
  Prediction prediction_;
  std::vector<float> log_sigmas_;
};

}  // namespace diffuse::sampling
