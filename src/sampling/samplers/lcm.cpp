// LCM (Luo et al. 2023, latent consistency models): diffusers' LCMScheduler. Each step maps the
// sample straight to a clean estimate with the consistency boundary condition
// (c_skip * x + c_out * x0), then re-noises it to the next timestep with a fresh draw; the last
// step keeps the clean estimate. Timesteps are taken from the 50-step distillation schedule, so it
// suits LCM-distilled models (or an LCM LoRA) at 2-8 steps.
#include <cmath>

#include "sampling/denoiser.h"
#include "sampling/noise_schedule.h"
#include "sampling/sampler.h"
#include "util/error.h"

namespace diffuse::sampling {

namespace {

// diffusers' defaults; SD scheduler configs never change them.
constexpr float kTimestepScaling = 10.0f;
constexpr float kSigmaDataSquared = 0.25f;  // sigma_data 0.5

class LcmSampler final : public Sampler {
 public:
  std::string name() const override { return "lcm"; }
  std::string display_name() const override { return "LCM"; }
  std::string description() const override {
    return "LCM, for latent-consistency-distilled models (2-8 steps); adds fresh noise each step";
  }
  bool offers_schedules() const override { return false; }
  LatentFrame frame() const override { return LatentFrame::TrainingTimestep; }

  Schedule make_schedule(const SchedulerConfig& config, const SamplerOptions& options) const override {
    return distillation_schedule(name(), config, options.steps);
  }

  at::Tensor run(const RunContext& context, at::Tensor x) const override {
    const auto& config = context.config;
    const at::Tensor alphas = alphas_cumprod(config, /*sigma_safe=*/false).contiguous();
    const float* alpha_at = alphas.data_ptr<float>();
    const auto& timesteps = context.schedule.timesteps;
    const bool clip = config.clip_sample.value_or(false);
    for (size_t i = context.first_step; i < timesteps.size(); ++i) {
      const auto t = static_cast<int64_t>(timesteps[i]);
      const at::Tensor output = context.model(x, timesteps[i]);
      const float alpha_t = alpha_at[t];
      at::Tensor predicted = denoised_from_alpha_sigma(config.prediction, output, x, std::sqrt(alpha_t),
                                                       std::sqrt(1.0f - alpha_t));
      if (clip) predicted = predicted.clamp(-config.clip_sample_range, config.clip_sample_range);

      const float scaled_t = static_cast<float>(t) * kTimestepScaling;
      const float c_skip = kSigmaDataSquared / (scaled_t * scaled_t + kSigmaDataSquared);
      const float c_out = scaled_t / std::sqrt(scaled_t * scaled_t + kSigmaDataSquared);
      const at::Tensor denoised = predicted * c_out + x * c_skip;
      if (i + 1 < timesteps.size()) {
        const float alpha_next = alpha_at[static_cast<int64_t>(timesteps[i + 1])];
        const at::Tensor noise = context.draw_noise(output);
        x = denoised * std::sqrt(alpha_next) + noise * std::sqrt(1.0f - alpha_next);
      } else {
        x = denoised;
      }
      x = context.finish_step(static_cast<int>(i), x, denoised);
    }
    return x;
  }
};

}  // namespace

std::unique_ptr<Sampler> make_lcm_sampler() { return std::make_unique<LcmSampler>(); }

}  // namespace diffuse::sampling
