// Writing a trained model as a diffusers folder, the layout pipeline::StableDiffusionModel::load
// reads, through the same writer `diffuse convert` uses (io/diffusers_folder.h).
#pragma once
#include <filesystem>

#include <torch/torch.h>

#include "models/config.h"
#include "sampling/sampling.h"

namespace diffuse::train {

// The noise schedule a trained model is trained with and ships with: SD 1.x's scaled-linear one,
// the defaults of sampling::SchedulerConfig.
sampling::SchedulerConfig training_schedule();

struct TrainedModel {
  const models::VaeConfig& vae_config;
  const torch::nn::Module& vae;
  const models::TextEncoderConfig& text_encoder_config;
  const torch::nn::Module& text_encoder;
  const models::UNetConfig& unet_config;
  const torch::nn::Module& unet;
};

// unet/, vae/, text_encoder/, scheduler/ and model_index.json in `folder` (the tokenizer is written
// when training starts); float32 weights.
void export_model(const std::filesystem::path& folder, const TrainedModel& model);

}  // namespace diffuse::train
