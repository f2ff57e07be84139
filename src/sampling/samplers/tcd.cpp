// TCD (Zheng et al. 2024, trajectory consistency distillation): diffusers' TCDScheduler, the
// sampler of the TCD LoRAs and Hyper-SD's one-step "unified" LoRA. On LCM's timesteps, each step
// goes from t to an intermediate s = floor((1 - gamma) * t_next) along the predicted trajectory
// (DDIM's update with the predicted x0 and noise), then re-noises from s to t_next with a fresh
// draw. gamma is --eta: 0 is deterministic, 1 jumps to x0 and re-noises like LCM; the last step
// adds no noise. Unlike LCM there is no boundary scaling, and the last step lands on timestep 0's
// level, not on x0 itself.
#include <cmath>

#include "sampling/denoiser.h"
#include "sampling/noise_schedule.h"
#include "sampling/sampler.h"
#include "util/error.h"

namespace diffuse::sampling {

namespace {

class TcdSampler final : public Sampler {
 public:
  std::string name() const override { return "tcd"; }
  std::string display_name() const override { return "TCD"; }
  std::string description() const override {
    return "TCD, for TCD and Hyper-SD LoRAs (1-8 steps); eta is its gamma, the noise re-added each step (0-1)";
  }
  bool uses_eta() const override { return true; }
  double max_eta() const override { return 1; }
  bool offers_schedules() const override { return false; }
  LatentFrame frame() const override { return LatentFrame::TrainingTimestep; }

  Schedule make_schedule(const SchedulerConfig& config, const SamplerOptions& options) const override {
    return distillation_schedule(name(), config, options.steps);
  }

  at::Tensor run(const RunContext& context, at::Tensor x) const override {
    const auto& config = context.config;
    const at::Tensor alphas = alphas_cumprod(config, /*sigma_safe=*/false).contiguous();
    const float* alpha_at = alphas.data_ptr<float>();
    const auto gamma = static_cast<float>(context.options.eta);
    const auto& timesteps = context.schedule.timesteps;
    for (size_t i = context.first_step; i < timesteps.size(); ++i) {
      const auto t = static_cast<int64_t>(timesteps[i]);
      const int64_t t_next = i + 1 < timesteps.size() ? static_cast<int64_t>(timesteps[i + 1]) : 0;
      // float32, as torch multiplies the long timestep by the Python float.
      const auto s = static_cast<int64_t>(std::floor(static_cast<float>(t_next) * (1.0f - gamma)));
      const at::Tensor output = context.model(x, timesteps[i]);

      const float alpha_t = alpha_at[t];
      const float alpha_s = alpha_at[s];
      const float sqrt_alpha = std::sqrt(alpha_t);
      const float sqrt_beta = std::sqrt(1.0f - alpha_t);
      const at::Tensor denoised = denoised_from_alpha_sigma(config.prediction, output, x, sqrt_alpha, sqrt_beta);
      const at::Tensor noise_pred = noise_from_alpha_sigma(config.prediction, output, x, sqrt_alpha, sqrt_beta);
      x = denoised * std::sqrt(alpha_s) + noise_pred * std::sqrt(1.0f - alpha_s);
      if (gamma > 0 && i + 1 < timesteps.size()) {
        const float ratio = alpha_at[t_next] / alpha_s;
        x = x * std::sqrt(ratio) + context.draw_noise(output) * std::sqrt(1.0f - ratio);
      }
      x = context.finish_step(static_cast<int>(i), x, denoised);
    }
    return x;
  }
};

}  // namespace

std::unique_ptr<Sampler> make_tcd_sampler() { return std::make_unique<TcdSampler>(); }

}  // namespace diffuse::sampling
