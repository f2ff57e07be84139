#include <climits>
#include <string>
#include <type_traits>

#include "sampling/sampling.h"
#include "util/error.h"

namespace diffuse::sampling {

namespace {

// diffusers writes null for "not set"; treat it like an absent field.
const nlohmann::json* field(const nlohmann::json& json, const char* name) {
  const auto it = json.find(name);
  if (it == json.end() || it->is_null()) return nullptr;
  return &*it;
}

template <typename T>
T value_of(const nlohmann::json& json, const char* name) {
  if constexpr (std::is_same_v<T, int>) {
    // nlohmann converts a float beyond int's range with undefined behaviour, and wraps a larger integer.
    const auto& value = json.at(name);
    const bool fits = value.is_number_unsigned() ? value.get<uint64_t>() <= static_cast<uint64_t>(INT_MAX)
                      : value.is_number_integer()
                          ? value.get<int64_t>() >= INT_MIN && value.get<int64_t>() <= INT_MAX
                          : !value.is_number_float() ||
                                (value.get<double>() > INT_MIN - 1.0 && value.get<double>() < INT_MAX + 1.0);
    if (!fits) throw Error(std::string("scheduler config: field '") + name + "' is out of range: " + value.dump());
  }
  try {
    return json.at(name).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(std::string("scheduler config: field '") + name + "' has the wrong type: " +
                json.at(name).dump());
  }
}

// A named value through the sampling layer's own parser; its error names the config field.
template <typename Parse>
auto enum_field(const nlohmann::json& json, const char* name, Parse parse) {
  try {
    return parse(value_of<std::string>(json, name));
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

  if (field(json, "num_train_timesteps")) config.num_train_timesteps = value_of<int>(json, "num_train_timesteps");
  if (field(json, "beta_start")) config.beta_start = value_of<double>(json, "beta_start");
  if (field(json, "beta_end")) config.beta_end = value_of<double>(json, "beta_end");
  if (field(json, "beta_schedule")) config.beta_schedule = value_of<std::string>(json, "beta_schedule");
  if (field(json, "trained_betas")) config.trained_betas = value_of<std::vector<double>>(json, "trained_betas");
  if (field(json, "prediction_type")) config.prediction = enum_field(json, "prediction_type", parse_prediction);
  if (field(json, "timestep_spacing")) config.timestep_spacing = enum_field(json, "timestep_spacing", parse_spacing);
  if (field(json, "steps_offset")) config.steps_offset = value_of<int>(json, "steps_offset");
  if (field(json, "set_alpha_to_one")) config.set_alpha_to_one = value_of<bool>(json, "set_alpha_to_one");
  if (field(json, "clip_sample")) config.clip_sample = value_of<bool>(json, "clip_sample");
  if (field(json, "clip_sample_range")) config.clip_sample_range = value_of<double>(json, "clip_sample_range");
  if (field(json, "rescale_betas_zero_snr")) config.rescale_betas_zero_snr = value_of<bool>(json, "rescale_betas_zero_snr");
  if (field(json, "use_karras_sigmas")) config.use_karras_sigmas = value_of<bool>(json, "use_karras_sigmas");

  // Every released model uses 1000; the bound keeps a corrupt value from allocating gigabytes of tables.
  constexpr int kMostTrainTimesteps = 100000;
  if (config.num_train_timesteps < 2 || config.num_train_timesteps > kMostTrainTimesteps) {
    throw Error("scheduler config: num_train_timesteps must be from 2 to " + std::to_string(kMostTrainTimesteps) +
                ", got " + std::to_string(config.num_train_timesteps));
  }
  if (field(json, "thresholding") && value_of<bool>(json, "thresholding")) {
    throw Error("scheduler config: thresholding = true is not supported");
  }
  return config;
}

}  // namespace diffuse::sampling
