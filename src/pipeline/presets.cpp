#include "pipeline/presets.h"

#include "util/error.h"

namespace diffuse::pipeline {

const std::vector<Preset>& presets() {
  static const std::vector<Preset> all = {
      {"turbo", "SD-Turbo, SDXL-Turbo and other adversarially distilled models (1-4 steps, no CFG)", "euler_a",
       "trailing", 1, 0.0},
      {"lcm", "LCM models (LCM_Dreamshaper) and any model with an LCM-LoRA (2-8 steps, guidance 1-2)", "lcm", "", 4,
       1.0},
  };
  return all;
}

const Preset& find_preset(const std::string& name) {
  std::string names;
  for (const auto& preset : presets()) {
    if (preset.name == name) return preset;
    names += (names.empty() ? "" : ", ") + preset.name;
  }
  throw InvalidParameter("preset", "'" + name + "' is not one of " + names);
}

void apply_preset(const Preset& preset, GenerationRequest& request, const std::set<std::string>& given) {
  if (!given.count("sampler")) request.sampler = preset.sampler;
  if (!given.count("timestep_spacing")) request.timestep_spacing = preset.timestep_spacing;
  if (!given.count("steps")) request.steps = preset.steps;
  if (!given.count("cfg_scale")) request.cfg_scale = preset.cfg_scale;
}

}  // namespace diffuse::pipeline
