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
  // Sd1 (CLIP, cond_stage_model.transformer), Sd2 (OpenCLIP, cond_stage_model.model) or Sdxl
  // (conditioner.embedders.0 and .1).
  LdmFamily family = LdmFamily::Sd1;
  std::vector<TensorRename> renames;
  std::vector<std::string> ignored;  // keys deliberately left out (buffers, EMA copies, unused layers)
};

// `keys`: every tensor name of the checkpoint. `open_clip_layer`: the OpenCLIP layer SD 2.x
// conditions on (io/original_config.h). `file` names the checkpoint in
// errors. Throws diffuse::Error for a key inside a component that has no diffusers counterpart, or
// for a checkpoint without a UNet, VAE or known text encoder(s).
LdmPlan plan_ldm_conversion(const std::vector<std::string>& keys, const std::string& open_clip_layer,
                            const std::string& file);

}  // namespace diffuse::io
