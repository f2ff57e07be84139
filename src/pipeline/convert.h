#pragma once
// `diffuse convert`: a model (or a LoRA, an embedding) from one file layout to another without
// running anything in it. Checkpoints go through the restricted reader; what is written is always
// safetensors, whole or not at all.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace diffuse::pipeline {

struct ConvertOptions {
  // Floating-point tensors in this type (fp32, fp16, bf16); nullopt keeps each as stored.
  std::optional<at::ScalarType> dtype;
};

struct ConvertReport {
  std::string kind;        // what was done, e.g. "checkpoint -> safetensors (tensors as stored)"
  size_t tensors = 0;      // tensors written
  std::vector<std::string> notes;  // what the user should know (e.g. no tokenizer to copy)
};

// By what `in` is and where `out` points:
// - a file (.ckpt/.pt/.pth/.bin/.safetensors) -> `out`.safetensors: its state dict, names as they are
//   (an AUTOMATIC1111 .pt embedding becomes its emb_params file);
// - a diffusers folder -> `out`.safetensors: one file in the original (LDM / SDXL sgm) layout;
// - a single-file model -> `out` without an extension: a diffusers folder (configs inferred as loading
//   does, the tokenizer beside the file copied).
// - a ControlNet: its diffusers folder -> `out`.safetensors in lllyasviel's layout (control_model.*),
//   its single file -> `out` a ControlNetModel folder (config inferred from the shapes);
// `out` must not exist as a folder; a file is replaced whole. Throws diffuse::Error naming the path,
// or InvalidParameter("precision"/"output") for a request that cannot be met.
ConvertReport convert_model(const std::filesystem::path& in, const std::filesystem::path& out,
                            const ConvertOptions& options = {});

}  // namespace diffuse::pipeline
