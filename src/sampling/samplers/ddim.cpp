// DDIM (Song et al. 2020): diffusers' DDIMScheduler, with eta. It steps on alphas_cumprod at integer
// timesteps; eta > 0 adds fresh noise each step (eta = 1 is DDPM-like ancestral sampling).
// The returned latents are the last step's x at the "previous timestep" below the last one, whose
// alpha is alphas_cumprod[0] (or 1 with set_alpha_to_one) - not the predicted x0 - as in diffusers.
#include <cmath>

#include "sampling/denoiser.h"
#include "sampling/noise_schedule.h"
#include "sampling/sampler.h"
#include "util/error.h"

namespace diffuse::sampling {

namespace {

class DdimSampler final : public Sampler {
 public:
  std::string name() const override { return "ddim"; }
  std::string display_name() const override { return "DDIM"; }
  std::string description() const override {
    return "DDIM; deterministic at eta 0, adds noise for eta > 0";
  }
  bool uses_eta() const override { return true; }
  bool offers_schedules() const override { return false; }
  LatentFrame frame() const override { return LatentFrame::TrainingTimestep; }

  Schedule make_schedule(const SchedulerConfig& config, const SamplerOptions& options) const override {
    Schedule schedule;
    schedule.timesteps = spaced_timesteps(config.num_train_timesteps,
                                          resolve_spacing(config, options, Spacing::Leading),
                                          config.steps_offset, options.steps, /*round_linspace=*/true);
    schedule.init_noise_sigma = 1.0;
    return schedule;
  }

  at::Tensor run(const RunContext& context, at::Tensor x) const override {
    const auto& config = context.config;
    const at::Tensor alphas = alphas_cumprod(config, /*sigma_safe=*/false).contiguous();
    const float* alpha_at = alphas.data_ptr<float>();
    const float final_alpha = config.set_alpha_to_one.value_or(true) ? 1.0f : alpha_at[0];
    const bool clip = config.clip_sample.value_or(true);
    const auto clip_range = config.clip_sample_range;
    const auto eta = static_cast<float>(context.options.eta);
    // diffusers steps back by this even when the spacing is trailing or linspace.
    const int stride = config.num_train_timesteps / context.options.steps;

    const auto& timesteps = context.schedule.timesteps;
    for (size_t i = context.first_step; i < timesteps.size(); ++i) {
      const auto t = static_cast<int64_t>(timesteps[i]);
      const int64_t prev_t = t - stride;
      if (t < 0 || t >= alphas.numel()) {
        throw Error("ddim: timestep " + std::to_string(t) + " is outside the training schedule");
      }
      const at::Tensor model_output = context.model(x, timesteps[i]);

      const float alpha_t = alpha_at[t];
      const float alpha_prev = prev_t >= 0 ? alpha_at[prev_t] : final_alpha;
      const float beta_t = 1.0f - alpha_t;
      const float sqrt_alpha = std::sqrt(alpha_t);
      const float sqrt_beta = std::sqrt(beta_t);
      at::Tensor denoised =
          denoised_from_alpha_sigma(config.prediction, model_output, x, sqrt_alpha, sqrt_beta);
      const at::Tensor noise_pred =
          noise_from_alpha_sigma(config.prediction, model_output, x, sqrt_alpha, sqrt_beta);
      if (clip) denoised = denoised.clamp(-clip_range, clip_range);

      const float variance = ((1.0f - alpha_prev) / beta_t) * (1.0f - alpha_t / alpha_prev);
      const float std_dev = eta * std::sqrt(variance);
      const at::Tensor direction = noise_pred * std::sqrt(1.0f - alpha_prev - std_dev * std_dev);
      x = denoised * std::sqrt(alpha_prev) + direction;
      if (eta > 0) x = x + context.draw_noise(model_output) * std_dev;
      x = context.finish_step(static_cast<int>(i), x, denoised);
    }
    return x;
  }
};

}  // namespace

std::unique_ptr<Sampler> make_ddim_sampler() { return std::make_unique<DdimSampler>(); }

}  // namespace diffuse::sampling
