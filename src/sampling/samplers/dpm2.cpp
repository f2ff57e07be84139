// DPM2 and DPM2 ancestral (k-diffusion's sample_dpm_2 / sample_dpm_2_ancestral): diffusers'
// KDPM2DiscreteScheduler and KDPM2AncestralDiscreteScheduler. Each step is an Euler step to the
// geometric mean of this sigma and the next (the ancestral one: the next sigma_down), a second
// model call there, and a step over the whole interval with that midpoint derivative; the ancestral
// one then adds fresh noise of sigma_up. The last step lands on sigma 0 with the Euler step alone,
// so the model is called 2*steps-1 times.
//
// diffusers keeps its tables interleaved (every interior sigma twice) and so does Schedule::sigmas,
// so the schedules compare directly with the reference's; run() reads the plain sigmas back out.
#include <cmath>

#include "sampling/denoiser.h"
#include "sampling/noise_schedule.h"
#include "sampling/sampler.h"

namespace diffuse::sampling {

namespace {

// Per plain sigma s_0 .. s_n (s_n = 0), float32 as diffusers computes them with torch.
struct Dpm2Tables {
  std::vector<float> sigmas;
  std::vector<float> interpolated;  // where the second model call is made
  std::vector<float> up, down;      // ancestral only
};

std::vector<float> to_vector(const at::Tensor& tensor) {
  const auto contiguous = tensor.contiguous();
  const float* data = contiguous.data_ptr<float>();
  return {data, data + contiguous.numel()};
}

Dpm2Tables make_tables(const std::vector<double>& plain_sigmas, bool ancestral) {
  std::vector<float> values(plain_sigmas.begin(), plain_sigmas.end());
  const at::Tensor sigmas = at::tensor(values, at::kFloat);
  Dpm2Tables tables;
  tables.sigmas = values;
  if (!ancestral) {
    // Geometric mean with the previous sigma: entry i belongs to the step from s_(i-1) to s_i.
    tables.interpolated = to_vector(sigmas.log().lerp(sigmas.roll(1).log(), 0.5).exp());
    return tables;
  }
  at::Tensor next = sigmas.roll(-1);
  next[-1] = 0.0;
  const at::Tensor up = (next.pow(2) * (sigmas.pow(2) - next.pow(2)) / sigmas.pow(2)).pow(0.5);
  at::Tensor down = (next.pow(2) - up.pow(2)).pow(0.5);
  down[-1] = 0.0;
  // Entry i belongs to the step from s_i down to its sigma_down.
  at::Tensor interpolated = sigmas.log().lerp(down.log(), 0.5).exp();
  interpolated.slice(0, -2).fill_(0.0);
  tables.interpolated = to_vector(interpolated);
  tables.up = to_vector(up);
  tables.down = to_vector(down);
  return tables;
}

class Dpm2Sampler final : public Sampler {
 public:
  explicit Dpm2Sampler(bool ancestral) : ancestral_(ancestral) {}

  std::string name() const override { return ancestral_ ? "dpm2_a" : "dpm2"; }
  std::string display_name() const override { return ancestral_ ? "DPM2 a" : "DPM2"; }
  std::string description() const override {
    return ancestral_ ? "DPM2 ancestral, second order with fresh noise each step, two model calls per step"
                      : "DPM2, second order midpoint solver, two model calls per step";
  }

  int order() const override { return 2; }

  Schedule make_schedule(const SchedulerConfig& config, const SamplerOptions& options) const override {
    const SigmaSchedule sigma_schedule = resolve_sigma_schedule(config, options);
    Schedule single = discrete_sigma_schedule(config, resolve_spacing(config, options, Spacing::Linspace),
                                              sigma_schedule, options.steps);
    if (sigma_schedule != SigmaSchedule::Default) {
      // KDPM2 rounds the timesteps of respaced sigmas, unlike Euler.
      for (auto& t : single.timesteps) t = np_round(t);
    }
    const Dpm2Tables tables = make_tables(single.sigmas, ancestral_);
    const auto log_sigmas = log_of(training_sigmas(alphas_cumprod(config, /*sigma_safe=*/true)));
    const int steps = options.steps;

    Schedule schedule;
    schedule.init_noise_sigma = single.init_noise_sigma;
    // s0, s1, s1, ..., s(n-1), s(n-1), 0, 0, 0 as diffusers lists them.
    schedule.sigmas.push_back(single.sigmas.front());
    for (size_t i = 1; i < single.sigmas.size(); ++i) schedule.sigmas.insert(schedule.sigmas.end(), 2, single.sigmas[i]);
    schedule.sigmas.push_back(single.sigmas.back());
    // t0, then the midpoint's timestep and the next timestep for every step but the last.
    schedule.timesteps.push_back(single.timesteps.front());
    for (int j = 0; j + 1 < steps; ++j) {
      const float midpoint = tables.interpolated[ancestral_ ? j : j + 1];
      schedule.timesteps.push_back(static_cast<float>(sigma_to_t(midpoint, log_sigmas)));
      schedule.timesteps.push_back(single.timesteps[j + 1]);
    }
    return schedule;
  }

  at::Tensor run(const RunContext& context, at::Tensor x) const override {
    const auto& interleaved = context.schedule.sigmas;
    const auto& timesteps = context.schedule.timesteps;
    const int steps = context.options.steps;
    std::vector<double> plain;
    for (int j = 0; j <= steps; ++j) plain.push_back(interleaved[2 * j]);
    const Dpm2Tables tables = make_tables(plain, ancestral_);
    const Prediction prediction = context.config.prediction;

    for (int j = context.first_step; j < steps; ++j) {
      const float sigma = tables.sigmas[j];
      const float midpoint = tables.interpolated[ancestral_ ? j : j + 1];
      at::Tensor output = context.model(x / std::sqrt(sigma * sigma + 1.0f), timesteps[2 * j]);
      // The ancestral scheduler draws at every call, its first order half included.
      if (ancestral_) context.draw_noise(output);
      const at::Tensor denoised = denoised_from_sigma(prediction, output, x, sigma);
      const at::Tensor start = x;
      x = x + (x - denoised) / sigma * (midpoint - sigma);
      if (static_cast<size_t>(2 * j + 1) >= timesteps.size()) {  // the last step: Euler to sigma 0
        x = context.finish_step(j, x, denoised);
        break;
      }

      output = context.model(x / std::sqrt(midpoint * midpoint + 1.0f), timesteps[2 * j + 1]);
      const at::Tensor noise = ancestral_ ? context.draw_noise(output) : at::Tensor();
      const at::Tensor denoised_mid = denoised_from_sigma(prediction, output, x, midpoint);
      const at::Tensor derivative = (x - denoised_mid) / midpoint;
      const float target = ancestral_ ? tables.down[j] : tables.sigmas[j + 1];
      x = start + derivative * (target - sigma);
      if (ancestral_) x = x + noise * tables.up[j];
      x = context.finish_step(j, x, denoised_mid);
    }
    return x;
  }

 private:
  bool ancestral_;
};

}  // namespace

std::unique_ptr<Sampler> make_dpm2_sampler() { return std::make_unique<Dpm2Sampler>(false); }
std::unique_ptr<Sampler> make_dpm2_ancestral_sampler() { return std::make_unique<Dpm2Sampler>(true); }

}  // namespace diffuse::sampling
