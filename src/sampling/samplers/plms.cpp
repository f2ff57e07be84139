// PLMS (Liu et al. 2022, pseudo linear multistep): diffusers' PNDMScheduler with skip_prk_steps, as
// Stable Diffusion's original configs use it. Each step applies the DDIM-like transfer of the PNDM
// paper's formula (9) to an Adams-Bashforth combination of the recent noise predictions. The first
// step has no history, so it is taken twice: once with eps_0 to get a point for a second model call,
// then again from the same start with the average of both predictions (a Heun step). So the model is
// called steps+1 times and the second timestep appears twice.
#include <cmath>
#include <vector>

#include "sampling/denoiser.h"
#include "sampling/noise_schedule.h"
#include "sampling/sampler.h"

namespace diffuse::sampling {

namespace {

class PlmsSampler final : public Sampler {
 public:
  std::string name() const override { return "plms"; }
  std::string display_name() const override { return "PLMS"; }
  std::string description() const override {
    return "PLMS (PNDM without Runge-Kutta warm-up), fourth order linear multistep on noise";
  }
  bool offers_schedules() const override { return false; }
  LatentFrame frame() const override { return LatentFrame::TrainingTimestep; }

  Schedule make_schedule(const SchedulerConfig& config, const SamplerOptions& options) const override {
    // PNDM always spaces like "leading" (arange * ratio + steps_offset) and ignores
    // timestep_spacing; an explicit other spacing is honoured as the other schedulers do.
    const Spacing spacing = options.timestep_spacing.value_or(Spacing::Leading);
    const auto spaced = spaced_timesteps(config.num_train_timesteps, spacing, config.steps_offset, options.steps,
                                         /*round_linspace=*/true);
    // t(n-1), ..., t1, t1, t0 reversed: the second timestep repeats for the Heun-like first step.
    Schedule schedule;
    schedule.timesteps.push_back(spaced.front());
    if (spaced.size() > 1) schedule.timesteps.push_back(spaced[1]);
    for (size_t i = 1; i < spaced.size(); ++i) schedule.timesteps.push_back(spaced[i]);
    schedule.init_noise_sigma = 1.0;
    return schedule;
  }

  at::Tensor run(const RunContext& context, at::Tensor x) const override {
    const auto& config = context.config;
    const at::Tensor alphas = alphas_cumprod(config, /*sigma_safe=*/false).contiguous();
    const float* alpha_at = alphas.data_ptr<float>();
    const float final_alpha = config.set_alpha_to_one.value_or(false) ? 1.0f : alpha_at[0];
    const int stride = config.num_train_timesteps / context.options.steps;
    const auto& timesteps = context.schedule.timesteps;

    // Raw model outputs, oldest first: diffusers combines them before converting v to eps. The
    // first step's second prediction is not kept.
    std::vector<at::Tensor> history;
    at::Tensor first_start;  // x before the first step, which is taken twice
    // PNDM counts its calls from the run's first timestep (an img2img run's too).
    const auto first = static_cast<size_t>(context.first_step);
    for (size_t index = first; index < timesteps.size(); ++index) {
      const size_t counter = index - first;
      auto t = static_cast<int64_t>(timesteps[index]);
      int64_t prev_t = t - stride;
      const at::Tensor output = context.model(x, timesteps[index]);

      at::Tensor combined;
      if (counter == 1) {
        // The redo of the first step: from its start, with the average of both predictions.
        prev_t = t;
        t += stride;
        combined = (output + history.back()) / 2;
        x = first_start;
      } else {
        history.push_back(output);
        if (history.size() > 4) history.erase(history.begin());
        combined = adams_bashforth(history);
        if (counter == 0) first_start = x;
      }
      const float alpha_t = alpha_at[t];
      const float alpha_prev = prev_t >= 0 ? alpha_at[prev_t] : final_alpha;
      const float sqrt_alpha = std::sqrt(alpha_t);
      const float sqrt_beta = std::sqrt(1.0f - alpha_t);
      const at::Tensor eps = noise_from_alpha_sigma(config.prediction, combined, x, sqrt_alpha, sqrt_beta);
      const at::Tensor denoised = denoised_from_alpha_sigma(config.prediction, combined, x, sqrt_alpha, sqrt_beta);
      x = transfer(x, eps, alpha_t, alpha_prev);
      if (counter > 0) x = context.finish_step(static_cast<int>(index) - 1, x, denoised);
    }
    return x;
  }

 private:
  // history has 1..4 entries; with one this is the first step's plain prediction.
  static at::Tensor adams_bashforth(const std::vector<at::Tensor>& e) {
    const size_t n = e.size();
    if (n == 1) return e[0];
    if (n == 2) return (3 * e[1] - e[0]) / 2;
    if (n == 3) return (23 * e[2] - 16 * e[1] + 5 * e[0]) / 12;
    return (1.0 / 24) * (55 * e[3] - 59 * e[2] + 37 * e[1] - 9 * e[0]);
  }

  // Formula (9) of the PNDM paper, in diffusers' operation order.
  static at::Tensor transfer(const at::Tensor& x, const at::Tensor& eps, float alpha_t, float alpha_prev) {
    const float beta_t = 1.0f - alpha_t;
    const float beta_prev = 1.0f - alpha_prev;
    // torch computes ** 0.5 as a square root.
    const float sample_coeff = std::sqrt(alpha_prev / alpha_t);
    const float denominator = alpha_t * std::sqrt(beta_prev) + std::sqrt(alpha_t * beta_t * alpha_prev);
    return x * sample_coeff - eps * (alpha_prev - alpha_t) / denominator;
  }
};

}  // namespace

std::unique_ptr<Sampler> make_plms_sampler() { return std::make_unique<PlmsSampler>(); }

}  // namespace diffuse::sampling
