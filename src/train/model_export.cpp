#include "train/model_export.h"

#include "io/diffusers_folder.h"

namespace diffuse::train {

namespace {

// A module's parameters by their (diffusers) names, detached float32 copies.
TensorMap named_weights(const torch::nn::Module& module) {
  TensorMap weights;
  for (const auto& item : module.named_parameters(true)) {
    weights[item.key()] = item.value().detach().to(at::kFloat).clone();
  }
  return weights;
}

}  // namespace

sampling::SchedulerConfig training_schedule() { return sampling::SchedulerConfig{}; }

void export_model(const std::filesystem::path& folder, const TrainedModel& model) {
  io::DiffusersPipelineFiles files;
  files.unet = {model.unet_config.to_json(), named_weights(model.unet)};
  files.vae = {model.vae_config.to_json(), named_weights(model.vae)};
  files.text_encoder = {model.text_encoder_config.to_json(), named_weights(model.text_encoder)};
  // PNDM with its Runge-Kutta steps skipped, as SD 1.x ships: what diffusers' pipeline would pick.
  files.scheduler = training_schedule().to_json();
  files.scheduler["_class_name"] = "PNDMScheduler";
  files.scheduler["skip_prk_steps"] = true;
  io::write_diffusers_pipeline(folder, files);
}

}  // namespace diffuse::train
