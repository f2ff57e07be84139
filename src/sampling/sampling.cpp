// The registry of samplers and the public entry points of sampling.h.
#include "sampling/sampling.h"

#include <cmath>

#include "sampling/noise_schedule.h"
#include "sampling/sampler.h"
#include "util/error.h"
#include "util/format.h"
#include "util/strings.h"

namespace diffuse::sampling {

namespace {

std::string joined_names() {
  std::string names;
  for (const auto& sampler : all_samplers()) names += (names.empty() ? "" : ", ") + sampler->name();
  return names;
}

// The names of an enum's values, in declaration order: the one list parsing, naming and the
// "valid values" of an error all read.
template <typename Enum>
struct NamedValues {
  std::vector<std::pair<Enum, std::string>> values;
  const char* parameter;

  Enum parse(const std::string& name) const {
    for (const auto& [value, value_name] : values) {
      if (value_name == name) return value;
    }
    std::string valid;
    for (const auto& [value, value_name] : values) valid += (valid.empty() ? "" : ", ") + value_name;
    throw InvalidParameter(parameter, "'" + name + "' is not one of " + valid);
  }
  const std::string& name(Enum wanted) const {
    for (const auto& [value, value_name] : values) {
      if (value == wanted) return value_name;
    }
    throw std::logic_error("an enum value without a name");
  }
};

const NamedValues<Prediction> kPredictions{{{Prediction::Epsilon, "epsilon"}, {Prediction::VPrediction, "v_prediction"}},
                                           "prediction"};
const NamedValues<Spacing> kSpacings{
    {{Spacing::Leading, "leading"}, {Spacing::Trailing, "trailing"}, {Spacing::Linspace, "linspace"}},
    "timestep_spacing"};
const NamedValues<SigmaSchedule> kSchedules{{{SigmaSchedule::Default, "default"},
                                             {SigmaSchedule::Karras, "karras"},
                                             {SigmaSchedule::Exponential, "exponential"},
                                             {SigmaSchedule::SgmUniform, "sgm_uniform"}},
                                            "schedule"};
// AUTOMATIC1111's names for the same schedules: its "Schedule type" menu, and the suffix of its
// sampler names ("DPM++ 2M Karras") in PNG parameters. "Automatic" is the sampler's own.
const NamedValues<SigmaSchedule> kA1111Schedules{{{SigmaSchedule::Default, "Automatic"},
                                                  {SigmaSchedule::Karras, "Karras"},
                                                  {SigmaSchedule::Exponential, "Exponential"},
                                                  {SigmaSchedule::SgmUniform, "SGM Uniform"}},
                                                 "scheduler"};

// The config the sampler runs with: a prediction option overrides the model's prediction type.
SchedulerConfig effective_config(const SchedulerConfig& config, const SamplerOptions& options) {
  SchedulerConfig effective = config;
  if (options.prediction) effective.prediction = *options.prediction;
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
    list.push_back(make_tcd_sampler());
    return list;
  }();
  return samplers;
}

const Sampler& find_sampler(const std::string& name) {
  for (const auto& sampler : all_samplers()) {
    if (sampler->name() == name) return *sampler;
  }
  throw InvalidParameter("sampler", "'" + name + "' is not one of " + joined_names());
}

SamplerChoice::SamplerChoice() : SamplerChoice("euler") {}
SamplerChoice::SamplerChoice(const std::string& name) : entry_(&find_sampler(name)) {}
std::string SamplerChoice::name() const { return entry_->name(); }

at::Tensor RunContext::draw_noise(const at::Tensor& like) const {
  return at::randn(like.sizes(), generator, at::TensorOptions().dtype(like.scalar_type()))
      .to(like.device());
}

at::Tensor RunContext::finish_step(int step, at::Tensor latents, const at::Tensor& denoised) const {
  if (after_step) latents = after_step(step, latents);
  if (callback) callback(StepInfo{step - first_step, options.steps - first_step, latents, denoised});
  return latents;
}

Prediction parse_prediction(const std::string& name) { return kPredictions.parse(name); }
Spacing parse_spacing(const std::string& name) { return kSpacings.parse(name); }
SigmaSchedule parse_sigma_schedule(const std::string& name) { return kSchedules.parse(name); }
std::string name_of(Prediction prediction) { return kPredictions.name(prediction); }
std::string name_of(Spacing spacing) { return kSpacings.name(spacing); }
std::string name_of(SigmaSchedule schedule) { return kSchedules.name(schedule); }

void validate(const SamplerOptions& options) {
  const Sampler& sampler = *options.sampler;
  if (options.schedule != SigmaSchedule::Default && !sampler.offers_schedules()) {
    throw InvalidParameter("schedule", "'" + name_of(options.schedule) + "' is not available for sampler '" +
                                           sampler.name() + "'; use 'default'");
  }
  if (options.steps < 1) throw InvalidParameter("steps", "must be at least 1, got " + std::to_string(options.steps));
  if (!(options.eta >= 0)) throw InvalidParameter("eta", "must be 0 or more, got " + std::to_string(options.eta));
  if (options.eta > 0 && !sampler.uses_eta()) {
    std::string users;
    for (const auto& s : all_samplers()) {
      if (s->uses_eta()) users += (users.empty() ? "" : ", ") + s->name();
    }
    throw InvalidParameter("eta", "applies only to samplers " + users + ", not to '" + sampler.name() + "'");
  }
  if (options.eta > sampler.max_eta()) {
    throw InvalidParameter("eta", "sampler '" + sampler.name() + "' takes eta from 0 to " + format_number(sampler.max_eta()) +
                                      ", got " + format_number(options.eta));
  }
}

void validate_for(const SamplerOptions& options, const SchedulerConfig& config) {
  if (options.steps >= config.num_train_timesteps) {
    // DPM-Solver's leading spacing divides the training steps into steps+1 parts.
    throw InvalidParameter("steps", "must be below the model's " + std::to_string(config.num_train_timesteps) +
                                        " training timesteps, got " + std::to_string(options.steps));
  }
}

Schedule make_schedule(const SchedulerConfig& config, const SamplerOptions& options) {
  return options.sampler->make_schedule(effective_config(config, options), options);
}

at::Tensor sample(const ModelFn& model, const SchedulerConfig& config, const SamplerOptions& options,
                  const at::Tensor& noise, at::Generator& generator, const StepCallback& callback) {
  const double init_noise_sigma = make_schedule(config, options).init_noise_sigma;
  // float32 multiply, as diffusers' `latents * scheduler.init_noise_sigma`.
  const at::Tensor x = init_noise_sigma == 1.0 ? noise.clone() : noise * static_cast<float>(init_noise_sigma);
  return sample_from(model, config, options, 0, x, generator, callback);
}

at::Tensor sample_from(const ModelFn& model, const SchedulerConfig& config, const SamplerOptions& options,
                       int first_step, const at::Tensor& start, at::Generator& generator,
                       const StepCallback& callback, const StepHook& after_step) {
  const SchedulerConfig effective = effective_config(config, options);
  const Schedule schedule = make_schedule(effective, options);
  if (start.scalar_type() != at::kFloat) {
    throw Error("sampling: starting latents must be float32, got " + std::string(at::toString(start.scalar_type())));
  }
  if (first_step < 0 || first_step >= options.steps) {
    throw Error("sampling: first step " + std::to_string(first_step) + " is outside the run's " +
                std::to_string(options.steps) + " steps");
  }
  const RunContext context{model, effective, options, schedule, generator, callback, first_step, after_step};
  return options.sampler->run(context, start.clone());
}

int first_step_for_strength(int steps, double strength) {
  if (!(strength > 0 && strength <= 1)) {
    throw InvalidParameter("strength", format_number(strength) + " is outside (0, 1]");
  }
  // Python's int(num_inference_steps * strength): the double product, truncated.
  const int kept = std::min(static_cast<int>(static_cast<double>(steps) * strength), steps);
  if (kept < 1) {
    throw InvalidParameter("strength", format_number(strength) + " with " + std::to_string(steps) +
                                           " steps runs no step (int(steps x strength) = 0): raise steps or strength");
  }
  return steps - kept;
}

at::Tensor add_noise(const SchedulerConfig& config, const SamplerOptions& options, const at::Tensor& original,
                     const at::Tensor& noise, int step) {
  if (step >= options.steps) return original;
  const SchedulerConfig effective = effective_config(config, options);
  const Sampler& sampler = *options.sampler;
  const Schedule schedule = sampler.make_schedule(effective, options);
  const size_t entry = static_cast<size_t>(step) * sampler.order();
  switch (sampler.frame()) {
    case LatentFrame::KDiffusion:
      return original + noise * static_cast<float>(schedule.sigmas.at(entry));
    case LatentFrame::VariancePreserving: {
      // diffusers' _sigma_to_alpha_sigma_t, on its float32 sigma.
      const auto sigma = static_cast<float>(schedule.sigmas.at(entry));
      const float alpha_t = 1.0f / std::sqrt(sigma * sigma + 1.0f);
      return original * alpha_t + noise * (sigma * alpha_t);
    }
    case LatentFrame::TrainingTimestep: {
      const at::Tensor alphas = alphas_cumprod(effective, /*sigma_safe=*/false).contiguous();
      const auto t = static_cast<int64_t>(schedule.timesteps.at(entry));
      const float alpha = alphas.data_ptr<float>()[t];
      return original * std::sqrt(alpha) + noise * std::sqrt(1.0f - alpha);
    }
  }
  throw std::logic_error("a latent frame without add_noise");
}

std::vector<std::pair<std::string, std::string>> sampler_names() {
  std::vector<std::pair<std::string, std::string>> names;
  for (const auto& sampler : all_samplers()) names.emplace_back(sampler->name(), sampler->description());
  return names;
}

std::string display_name(const SamplerOptions& options) {
  const std::string name = options.sampler->display_name();
  if (options.schedule == SigmaSchedule::Default) return name;
  return name + " " + kA1111Schedules.name(options.schedule);
}

SigmaSchedule parse_a1111_schedule(const std::string& name) {
  const std::string wanted = to_lower(name);
  if (wanted.empty()) return SigmaSchedule::Default;
  for (const auto& table : {&kA1111Schedules, &kSchedules}) {
    for (const auto& [value, value_name] : table->values) {
      if (to_lower(value_name) == wanted) return value;
    }
  }
  // A1111's "Uniform" spaces the training timesteps evenly, as the samplers' own schedule does.
  if (wanted == "uniform") return SigmaSchedule::Default;
  return kA1111Schedules.parse(name);  // throws, listing A1111's names
}

std::vector<std::pair<std::string, std::string>> schedule_names() {
  const auto description = [](SigmaSchedule schedule) {
    switch (schedule) {
      case SigmaSchedule::Default: return "the model's noise schedule, spaced as its scheduler config says";
      case SigmaSchedule::Karras: return "Karras et al. (2022) sigmas, rho 7: more steps at low noise";
      case SigmaSchedule::Exponential: return "sigmas evenly spaced in log sigma";
      case SigmaSchedule::SgmUniform: return "timesteps evenly spaced from the top of the schedule, as SGM and ComfyUI";
    }
    return "";
  };
  std::vector<std::pair<std::string, std::string>> names;
  for (const auto& [schedule, name] : kSchedules.values) names.emplace_back(name, description(schedule));
  return names;
}

}  // namespace diffuse::sampling
