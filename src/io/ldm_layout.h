// The one mapping table from original single-file (LDM / CompVis) tensor names to the diffusers
// names our modules use. Planning works on names alone, so it is cheap and testable; applying a
// plan (model_files.cpp) reads the tensors.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace diffuse::io {

enum class Component { Unet, Vae, TextEncoder };
const char* component_name(Component component);

enum class Transform {
  None,
  ConvToLinear,  // [C, C, 1, 1] 1x1 conv weight -> [C, C] linear weight (VAE mid attention)
  ChunkOf3,      // one third (row block `chunk`) of a fused q/k/v projection (OpenCLIP in_proj)
};

struct TensorRename {
  std::string source;  // key in the file
  Component component;
  std::string target;  // diffusers name inside the component
  Transform transform = Transform::None;
  int chunk = 0;       // for ChunkOf3: 0 = q, 1 = k, 2 = v
};

struct LdmPlan {
  std::string family;                // "sd1" (CLIP, cond_stage_model.transformer) or "sd2" (OpenCLIP)
  std::vector<TensorRename> renames;
  std::vector<std::string> ignored;  // keys deliberately left out (buffers, EMA copies, unused layers)
};

// `keys`: every tensor name of the checkpoint. `original_config`: the original-style config
// (null if none); only consulted for the OpenCLIP layer choice. `file` names the checkpoint in
// errors. Throws diffuse::Error for a key inside a component that has no diffusers counterpart, or
// for a checkpoint without a UNet, VAE or known text encoder.
LdmPlan plan_ldm_conversion(const std::vector<std::string>& keys, const nlohmann::json& original_config,
                            const std::string& file);

}  // namespace diffuse::io
