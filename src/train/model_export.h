// Writing trained components as a diffusers folder, the layout pipeline::StableDiffusionModel::load reads.
#pragma once
#include <filesystem>

#include <torch/torch.h>

#include "models/config.h"
#include "util/tensor_map.h"

namespace diffuse::train {

// A module's parameters by their (diffusers) names, detached float32 copies.
TensorMap named_weights(const torch::nn::Module& module);

void write_vae(const std::filesystem::path& folder, const models::VaeConfig& config, const torch::nn::Module& vae);
void write_unet(const std::filesystem::path& folder, const models::UNetConfig& config, const torch::nn::Module& unet);
void write_text_encoder(const std::filesystem::path& folder, const models::TextEncoderConfig& config,
                        const torch::nn::Module& text_encoder);
// The noise schedule a trained model is trained with and ships with: SD 1.x's scaled-linear one.
nlohmann::ordered_json scheduler_config_json();
// model_index.json and scheduler/scheduler_config.json (scheduler_config_json()).
void write_pipeline_files(const std::filesystem::path& folder);

}  // namespace diffuse::train
