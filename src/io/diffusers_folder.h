#pragma once
// Writing a diffusers folder: the one writer `diffuse convert` (single file -> folder) and
// `diffuse train` (its export) both use, so the two give the same files for the same model.
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "util/tensor_map.h"

namespace diffuse::io {

// The diffusers version our written configs claim: the one the fixtures' reference folders came from.
inline constexpr const char* kDiffusersVersion = "0.27.2";

struct DiffusersComponent {
  nlohmann::json config;  // the component's config.json (a models:: config's to_json())
  TensorMap tensors;      // by their diffusers names
};

struct DiffusersPipelineFiles {
  DiffusersComponent unet, vae, text_encoder;
  std::optional<DiffusersComponent> text_encoder_2;  // SDXL: StableDiffusionXLPipeline
  nlohmann::json scheduler;                          // scheduler_config.json; PNDMScheduler unless it says
  bool force_zeros_for_empty_prompt = true;          // SDXL's model_index.json field
};

// Writes unet/, vae/, text_encoder/ (and text_encoder_2/), each config.json with weights as
// safetensors, scheduler/scheduler_config.json and model_index.json into `folder`, creating it. Every
// file is written whole or not at all (util/atomic_file.h). Tokenizers are the caller's: they come
// from different places (a trained vocabulary, CLIP's .gz, a folder).
void write_diffusers_pipeline(const std::filesystem::path& folder, const DiffusersPipelineFiles& files);

// JSON as diffusers writes it (two-space indent, newline at the end), whole or not at all.
void write_json_file(const std::filesystem::path& path, const nlohmann::json& value);

}  // namespace diffuse::io
