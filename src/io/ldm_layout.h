// Loading an original single-file (LDM / CompVis) checkpoint: which file tensor becomes which
// diffusers-named tensor of which component, looked up in the one name table (io/ldm_names.h).
// Planning works on names alone, so it is cheap and testable; applying a plan (model_files.cpp)
// reads the tensors.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/ldm_names.h"

namespace diffuse::io {

struct TensorRename {
  std::string source;  // key in the file
  Component component;
  std::string target;  // diffusers name inside the component
  Transform transform = Transform::None;
  int chunk = 0;       // for ChunkOf3: 0 = q, 1 = k, 2 = v
};

struct LdmPlan {
  // "sd1" (CLIP, cond_stage_model.transformer), "sd2" (OpenCLIP, cond_stage_model.model) or "sdxl"
  // (conditioner.embedders.0 and .1): ldm_family_name(LdmFamily).
  std::string family;
  std::vector<TensorRename> renames;
  std::vector<std::string> ignored;  // keys deliberately left out (buffers, EMA copies, unused layers)
};

// `keys`: every tensor name of the checkpoint. `original_config`: the original-style config
// (null if none); only consulted for SD 2.x's OpenCLIP layer choice. `file` names the checkpoint in
// errors. Throws diffuse::Error for a key inside a component that has no diffusers counterpart, or
// for a checkpoint without a UNet, VAE or known text encoder(s).
LdmPlan plan_ldm_conversion(const std::vector<std::string>& keys, const nlohmann::json& original_config,
                            const std::string& file);

}  // namespace diffuse::io
