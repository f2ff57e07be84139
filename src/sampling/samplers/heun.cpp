// Heun (Karras et al. 2022, Algorithm 1 without churn): diffusers' HeunDiscreteScheduler. Each step
// is an Euler predictor and a trapezoidal corrector at the next sigma, except the last, which goes
// to sigma 0 with the predictor alone. So the schedule lists every interior timestep twice and the
// model is called 2*steps-1 times.
#include <cmath>

#include "sampling/denoiser.h"
#include "sampling/noise_schedule.h"
#include "sampling/sampler.h"

namespace diffuse::sampling {

namespace {

class HeunSampler final : public Sampler {
 public:
  std::string name() const override { return "heun"; }
  std::string display_name() const override { return "Heun"; }
  std::string description() const override {
    return "Heun, second order ODE solver, two model calls per step";
  }

  int order() const override { return 2; }

  Schedule make_schedule(const SchedulerConfig& config, const SamplerOptions& options) const override {
    const Schedule single = discrete_sigma_schedule(
        config, resolve_spacing(config, options, Spacing::Linspace), resolve_sigma_schedule(config, options),
        options.steps);
    // sigmas: s0, s1, s1, ..., s(n-1), s(n-1), 0; timesteps: t0, t1, t1, ..., t(n-1), t(n-1).
    Schedule schedule;
    schedule.init_noise_sigma = single.init_noise_sigma;
    schedule.sigmas.push_back(single.sigmas.front());
    for (size_t i = 1; i + 1 < single.sigmas.size(); ++i) {
      schedule.sigmas.insert(schedule.sigmas.end(), 2, single.sigmas[i]);
    }
    schedule.sigmas.push_back(single.sigmas.back());
    schedule.timesteps.push_back(single.timesteps.front());
    for (size_t i = 1; i < single.timesteps.size(); ++i) {
      schedule.timesteps.insert(schedule.timesteps.end(), 2, single.timesteps[i]);
    }
    return schedule;
  }

  at::Tensor run(const RunContext& context, at::Tensor x) const override {
    const auto& sigmas = context.schedule.sigmas;
    const auto& timesteps = context.schedule.timesteps;
    const bool clip = context.config.clip_sample.value_or(false);
    const auto clip_range = context.config.clip_sample_range;

    // Held between the predictor and the corrector.
    bool in_corrector = false;
    float predictor_dt = 0;
    at::Tensor predictor_derivative;
    at::Tensor predictor_start;

    for (size_t k = 2 * static_cast<size_t>(context.first_step); k < timesteps.size(); ++k) {
      const bool predictor = !in_corrector;
      const auto sigma_here = static_cast<float>(sigmas[k]);
      const at::Tensor model_output =
          context.model(x / std::sqrt(sigma_here * sigma_here + 1.0f), timesteps[k]);
      at::Tensor denoised = denoised_from_sigma(context.config.prediction, model_output, x, sigma_here);
      if (clip) denoised = denoised.clamp(-clip_range, clip_range);

      if (predictor) {
        const auto sigma_next = static_cast<float>(sigmas[k + 1]);
        predictor_derivative = (x - denoised) / sigma_here;
        predictor_dt = sigma_next - sigma_here;
        predictor_start = x;
        x = x + predictor_derivative * predictor_dt;
        in_corrector = true;
      } else {
        const at::Tensor derivative = (predictor_derivative + (x - denoised) / sigma_here) / 2;
        x = predictor_start + derivative * predictor_dt;
        in_corrector = false;
      }
      // Steps end after each corrector, and after the final predictor, which has none.
      const bool last = k + 1 == timesteps.size();
      if (!predictor || last) x = context.finish_step(static_cast<int>(k / 2), x, denoised);
    }
    return x;
  }
};

}  // namespace

std::unique_ptr<Sampler> make_heun_sampler() { return std::make_unique<HeunSampler>(); }

}  // namespace diffuse::sampling
