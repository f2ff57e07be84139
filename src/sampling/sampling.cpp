// The registry of samplers and the public entry points of sampling.h.
#include "sampling/sampling.h"

#include "sampling/sampler.h"
#include "util/error.h"

namespace diffuse::sampling {

namespace {

std::string joined_names() {
  std::string names;
  for (const auto& sampler : all_samplers()) names += (names.empty() ? "" : ", ") + sampler->name();
  return names;
}

std::string joined(const std::vector<std::pair<std::string, std::string>>& named) {
  std::string names;
  for (const auto& [name, description] : named) names += (names.empty() ? "" : ", ") + name;
  return names;
}

// The config the sampler runs with: --prediction overrides the model's prediction type.
SchedulerConfig effective_config(const SchedulerConfig& config, const SamplerOptions& options) {
  SchedulerConfig effective = config;
  if (options.prediction) {
    effective.prediction = *options.prediction == "v_prediction" ? Prediction::VPrediction : Prediction::Epsilon;
  }
  return effective;
}

}  // namespace

const std::vector<std::unique_ptr<Sampler>>& all_samplers() {
  // Listed explicitly rather than self-registered: static initialisers in a static library are
  // dropped by the linker when nothing references their object file.
  static const auto samplers = [] {
    std::vector<std::unique_ptr<Sampler>> list;
    list.push_back(make_euler_sampler());
    list.push_back(make_euler_ancestral_sampler());
    list.push_back(make_heun_sampler());
    list.push_back(make_lms_sampler());
    list.push_back(make_ddim_sampler());
    list.push_back(make_dpmpp_2m_sampler());
    list.push_back(make_dpmpp_2m_sde_sampler());
    list.push_back(make_dpm2_sampler());
    list.push_back(make_dpm2_ancestral_sampler());
    list.push_back(make_plms_sampler());
    list.push_back(make_dpmpp_2s_sampler());
    list.push_back(make_dpmpp_2s_ancestral_sampler());
    list.push_back(make_dpmpp_sde_sampler());
    list.push_back(make_unipc_sampler());
    list.push_back(make_deis_sampler());
    list.push_back(make_lcm_sampler());
    return list;
  }();
  return samplers;
}

const Sampler& find_sampler(const std::string& name) {
  for (const auto& sampler : all_samplers()) {
    if (sampler->name() == name) return *sampler;
  }
  throw Error("unknown sampler '" + name + "'; valid samplers: " + joined_names());
}

at::Tensor RunContext::draw_noise(const at::Tensor& like) const {
  return at::randn(like.sizes(), generator, at::TensorOptions().dtype(like.scalar_type()))
      .to(like.device());
}

void RunContext::report(int step, const at::Tensor& latents, const at::Tensor& denoised) const {
  if (callback) callback(StepInfo{step, options.steps, latents, denoised});
}

void validate(const SamplerOptions& options) {
  const Sampler& sampler = find_sampler(options.sampler);
  bool known_schedule = false;
  for (const auto& [name, description] : schedule_names()) known_schedule |= name == options.schedule;
  if (!known_schedule) {
    throw Error("unknown schedule '" + options.schedule + "'; valid schedules: " + joined(schedule_names()));
  }
  if (options.schedule != "default" && !sampler.offers_schedules()) {
    throw Error("schedule '" + options.schedule + "' is not available for sampler '" + options.sampler +
                "'; use schedule 'default'");
  }
  if (options.prediction && *options.prediction != "epsilon" && *options.prediction != "v_prediction") {
    throw Error("unknown prediction '" + *options.prediction + "'; valid predictions: epsilon, v_prediction");
  }
  if (options.timestep_spacing) {
    const auto& spacing = *options.timestep_spacing;
    if (spacing != "leading" && spacing != "trailing" && spacing != "linspace") {
      throw Error("unknown timestep_spacing '" + spacing +
                  "'; valid spacings: leading, trailing, linspace");
    }
  }
  if (options.steps < 1) {
    throw Error("steps must be at least 1, got " + std::to_string(options.steps));
  }
  if (!(options.eta >= 0)) {
    throw Error("eta must be 0 or more, got " + std::to_string(options.eta));
  }
  if (options.eta > 0 && !sampler.uses_eta()) {
    std::string users;
    for (const auto& s : all_samplers()) {
      if (s->uses_eta()) users += (users.empty() ? "" : ", ") + s->name();
    }
    throw Error("eta applies only to samplers " + users + ", not to '" + options.sampler + "'");
  }
}

Schedule make_schedule(const SchedulerConfig& config, const SamplerOptions& options) {
  validate(options);
  if (options.steps >= config.num_train_timesteps) {
    // DPM-Solver's leading spacing divides the training steps into steps+1 parts.
    throw Error("steps must be below num_train_timesteps (" +
                std::to_string(config.num_train_timesteps) + "), got " + std::to_string(options.steps));
  }
  return find_sampler(options.sampler).make_schedule(effective_config(config, options), options);
}

at::Tensor sample(const ModelFn& model, const SchedulerConfig& config, const SamplerOptions& options,
                  const at::Tensor& noise, at::Generator& generator, const StepCallback& callback) {
  const SchedulerConfig effective = effective_config(config, options);
  const Schedule schedule = make_schedule(effective, options);
  if (noise.scalar_type() != at::kFloat) {
    throw Error("sampling: initial noise must be float32, got " + std::string(at::toString(noise.scalar_type())));
  }
  const RunContext context{model, effective, options, schedule, generator, callback};
  // float32 multiply, as diffusers' `latents * scheduler.init_noise_sigma`.
  const at::Tensor x = schedule.init_noise_sigma == 1.0
                           ? noise.clone()
                           : noise * static_cast<float>(schedule.init_noise_sigma);
  return find_sampler(options.sampler).run(context, x);
}

std::vector<std::pair<std::string, std::string>> sampler_names() {
  std::vector<std::pair<std::string, std::string>> names;
  for (const auto& sampler : all_samplers()) names.emplace_back(sampler->name(), sampler->description());
  return names;
}

std::vector<std::pair<std::string, std::string>> schedule_names() {
  return {{"default", "the model's noise schedule, spaced as its scheduler config says"},
          {"karras", "Karras et al. (2022) sigmas, rho 7: more steps at low noise"},
          {"exponential", "sigmas evenly spaced in log sigma"},
          {"sgm_uniform", "timesteps evenly spaced from the top of the schedule, as SGM and ComfyUI"}};
}

}  // namespace diffuse::sampling
