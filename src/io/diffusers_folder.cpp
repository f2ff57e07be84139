#include "io/diffusers_folder.h"

#include <fstream>

#include "io/safetensors_writer.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace diffuse::io {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

void write_component(const fs::path& folder, const DiffusersComponent& component, const char* weights_file) {
  fs::create_directories(folder);
  json config = component.config;
  config["_diffusers_version"] = kDiffusersVersion;
  write_json_file(folder / "config.json", config);
  write_safetensors(folder / weights_file, component.tensors, {{"format", "pt"}});
}

}  // namespace

void write_json_file(const fs::path& path, const json& value) {
  write_file_atomically(path, [&](const fs::path& temporary) {
    std::ofstream file(temporary, std::ios::trunc);
    file << value.dump(2) << "\n";
    if (!file.flush()) throw Error(path.string() + ": cannot write");
  });
}

void write_diffusers_pipeline(const fs::path& folder, const DiffusersPipelineFiles& files) {
  fs::create_directories(folder);
  write_component(folder / "unet", files.unet, "diffusion_pytorch_model.safetensors");
  write_component(folder / "vae", files.vae, "diffusion_pytorch_model.safetensors");
  write_component(folder / "text_encoder", files.text_encoder, "model.safetensors");
  json scheduler = files.scheduler.is_object() ? files.scheduler : json::object();
  if (!scheduler.contains("_class_name")) scheduler["_class_name"] = "PNDMScheduler";
  scheduler["_diffusers_version"] = kDiffusersVersion;
  fs::create_directories(folder / "scheduler");
  write_json_file(folder / "scheduler" / "scheduler_config.json", scheduler);

  const bool xl = files.text_encoder_2.has_value();
  json index = {{"_class_name", xl ? "StableDiffusionXLPipeline" : "StableDiffusionPipeline"},
                {"_diffusers_version", kDiffusersVersion},
                {"unet", {"diffusers", "UNet2DConditionModel"}},
                {"vae", {"diffusers", "AutoencoderKL"}},
                {"text_encoder", {"transformers", "CLIPTextModel"}},
                {"tokenizer", {"transformers", "CLIPTokenizer"}},
                {"scheduler", {"diffusers", scheduler.at("_class_name")}}};
  if (xl) {
    write_component(folder / "text_encoder_2", *files.text_encoder_2, "model.safetensors");
    index["text_encoder_2"] = {"transformers", "CLIPTextModelWithProjection"};
    index["tokenizer_2"] = {"transformers", "CLIPTokenizer"};
    index["force_zeros_for_empty_prompt"] = files.force_zeros_for_empty_prompt;
  } else {
    index["safety_checker"] = {nullptr, nullptr};
    index["feature_extractor"] = {nullptr, nullptr};
    index["requires_safety_checker"] = false;
  }
  write_json_file(folder / "model_index.json", index);
}

}  // namespace diffuse::io
