#pragma once
// Named settings for few-step models, so nobody has to remember that SD-Turbo wants euler_a with
// trailing spacing, one step and no guidance. A preset fills in only what the user did not set.
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "pipeline/request.h"

namespace diffuse::pipeline {

struct Preset {
  std::string name;
  std::string description;  // which models it suits
  std::string sampler;
  std::string timestep_spacing;  // empty: the scheduler config's
  int steps = 0;
  double cfg_scale = 0;
};

const std::vector<Preset>& presets();
// Throws diffuse::InvalidParameter("preset") listing the names for an unknown one.
const Preset& find_preset(const std::string& name);
// The preset's sampler, spacing, steps and CFG scale into `request`, except for the request fields
// named in `given` ("sampler", "timestep_spacing", "steps", "cfg_scale"), which the user set.
void apply_preset(const Preset& preset, GenerationRequest& request, const std::set<std::string>& given);

}  // namespace diffuse::pipeline
