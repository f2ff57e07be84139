#pragma once
// Reading a ControlNet from disk into diffusers-named tensors, whatever its layout: a diffusers
// ControlNetModel folder (config.json + weights), one of lllyasviel's single files (ControlNet
// 1.0 / 1.1: input_hint_block, zero_convs, middle_block_out and the copied encoder, with or
// without the control_model. prefix; .safetensors, or .pth through the restricted reader), or a
// single file that already holds diffusers names.
#include <filesystem>

#include <ATen/ATen.h>

#include "io/model_files.h"

namespace diffuse::io {

// `config` is the folder's config.json, or null for a single file (infer the architecture from the
// shapes). Floating-point tensors come as `dtype`. Throws diffuse::Error naming the path or tensor.
ComponentWeights load_controlnet_files(const std::filesystem::path& path, at::ScalarType dtype);

// Whether `path` holds a ControlNet rather than a whole model: a folder whose config.json says
// ControlNetModel, or a file with input_hint_block.* (either prefix) or diffusers' hint encoder.
bool is_controlnet_path(const std::filesystem::path& path);

// The same ControlNet under lllyasviel's names (control_model.*), as its single files hold it:
// through the one name table loading uses.
TensorMap export_controlnet_checkpoint(const TensorMap& controlnet);

}  // namespace diffuse::io
