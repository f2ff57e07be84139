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

bool uses_karras_schedule(const SamplerOptions& options) { return options.schedule == "karras"; }

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

bool wants_karras(const SchedulerConfig& config, const SamplerOptions& options) {
  return uses_karras_schedule(options) || (options.schedule == "default" && config.use_karras_sigmas);
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
  if (options.schedule != "default" && options.schedule != "karras") {
    throw Error("unknown schedule '" + options.schedule + "'; valid schedules: default, karras");
  }
  if (uses_karras_schedule(options) && !sampler.offers_karras()) {
    throw Error("schedule 'karras' is not available for sampler '" + options.sampler +
                "'; use schedule 'default'");
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
  return find_sampler(options.sampler).make_schedule(config, options);
}

at::Tensor sample(const ModelFn& model, const SchedulerConfig& config, const SamplerOptions& options,
                  const at::Tensor& noise, at::Generator& generator, const StepCallback& callback) {
  const Schedule schedule = make_schedule(config, options);
  if (noise.scalar_type() != at::kFloat) {
    throw Error("sampling: initial noise must be float32, got " + std::string(at::toString(noise.scalar_type())));
  }
  const RunContext context{model, config, options, schedule, generator, callback};
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

}  // namespace diffuse::sampling
