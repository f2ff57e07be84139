#include <string>

#include "sampling/sampling.h"
#include "util/error.h"
#include "util/json_field.h"

namespace diffuse::sampling {

namespace {

// A field through util's typed reader, its error prefixed with the file kind.
template <typename T>
std::optional<T> field(const nlohmann::json& json, const char* name) {
  try {
    return json_field<T>(json, name);
  } catch (const InvalidParameter& e) {
    throw Error(std::string("scheduler config: ") + e.what());
  }
}

// Sets `target` where the config names the field.
template <typename T, typename Target>
void read_field(const nlohmann::json& json, const char* name, Target& target) {
  if (auto value = field<T>(json, name)) target = std::move(*value);
}

// A named value through the sampling layer's own parser; its error names the config field.
template <typename Parse>
auto enum_field(const nlohmann::json& json, const char* name, Parse parse) {
  try {
    return parse(*field<std::string>(json, name));
  } catch (const InvalidParameter& e) {
    throw Error(std::string("scheduler config: field '") + name + "': " + e.problem());
  }
}

}  // namespace

SchedulerConfig SchedulerConfig::from_json(const nlohmann::json& json) {
  if (!json.is_object()) throw Error("scheduler config: expected a JSON object");
  // Start from diffusers' constructor defaults, not SD 1.x: an absent field means what it means
  // to diffusers. The class-dependent ones stay unset for the sampler to decide.
  SchedulerConfig config;
  config.beta_start = 0.0001;
  config.beta_end = 0.02;
  config.beta_schedule = "linear";
  config.timestep_spacing.reset();
  config.steps_offset = 0;
  config.set_alpha_to_one.reset();
  config.clip_sample.reset();

  read_field<int>(json, "num_train_timesteps", config.num_train_timesteps);
  read_field<double>(json, "beta_start", config.beta_start);
  read_field<double>(json, "beta_end", config.beta_end);
  read_field<std::string>(json, "beta_schedule", config.beta_schedule);
  read_field<std::vector<double>>(json, "trained_betas", config.trained_betas);
  if (json_has(json, "prediction_type")) config.prediction = enum_field(json, "prediction_type", parse_prediction);
  if (json_has(json, "timestep_spacing")) config.timestep_spacing = enum_field(json, "timestep_spacing", parse_spacing);
  read_field<int>(json, "steps_offset", config.steps_offset);
  read_field<bool>(json, "set_alpha_to_one", config.set_alpha_to_one);
  read_field<bool>(json, "clip_sample", config.clip_sample);
  read_field<double>(json, "clip_sample_range", config.clip_sample_range);
  read_field<bool>(json, "rescale_betas_zero_snr", config.rescale_betas_zero_snr);
  read_field<bool>(json, "use_karras_sigmas", config.use_karras_sigmas);

  // Every released model uses 1000; the bound keeps a corrupt value from allocating gigabytes of tables.
  constexpr int kMostTrainTimesteps = 100000;
  if (config.num_train_timesteps < 2 || config.num_train_timesteps > kMostTrainTimesteps) {
    throw Error("scheduler config: num_train_timesteps must be from 2 to " + std::to_string(kMostTrainTimesteps) +
                ", got " + std::to_string(config.num_train_timesteps));
  }
  if (field<bool>(json, "thresholding").value_or(false)) {
    throw Error("scheduler config: thresholding = true is not supported");
  }
  return config;
}

nlohmann::json SchedulerConfig::to_json() const {
  nlohmann::json json = {{"num_train_timesteps", num_train_timesteps},
                         {"beta_start", beta_start},
                         {"beta_end", beta_end},
                         {"beta_schedule", beta_schedule},
                         {"prediction_type", name_of(prediction)},
                         {"steps_offset", steps_offset},
                         {"clip_sample_range", clip_sample_range},
                         {"rescale_betas_zero_snr", rescale_betas_zero_snr},
                         {"use_karras_sigmas", use_karras_sigmas}};
  if (!trained_betas.empty()) json["trained_betas"] = trained_betas;
  if (timestep_spacing) json["timestep_spacing"] = name_of(*timestep_spacing);
  if (set_alpha_to_one) json["set_alpha_to_one"] = *set_alpha_to_one;
  if (clip_sample) json["clip_sample"] = *clip_sample;
  return json;
}

}  // namespace diffuse::sampling
