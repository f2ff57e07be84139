#include "train/model_export.h"

#include <fstream>

#include "io/safetensors_writer.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace diffuse::train {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

constexpr const char* kDiffusersVersion = "0.27.2";

void write_json(const fs::path& path, const ordered_json& json) {
  fs::create_directories(path.parent_path());
  write_file_atomically(path, [&](const fs::path& temp) {
    std::ofstream out(temp, std::ios::trunc);
    out << json.dump(2) << "\n";
    if (!out.flush()) throw Error(path.string() + ": cannot write");
  });
}

std::vector<std::string> repeated(size_t count, const std::string& value) { return std::vector<std::string>(count, value); }

}  // namespace

TensorMap named_weights(const torch::nn::Module& module) {
  TensorMap weights;
  for (const auto& item : module.named_parameters(true)) {
    weights[item.key()] = item.value().detach().to(at::kFloat).clone();
  }
  return weights;
}

void write_vae(const fs::path& folder, const models::VaeConfig& c, const torch::nn::Module& vae) {
  const size_t levels = c.block_out_channels.size();
  write_json(folder / "config.json",
             {{"_class_name", "AutoencoderKL"},
              {"_diffusers_version", kDiffusersVersion},
              {"act_fn", "silu"},
              {"block_out_channels", c.block_out_channels},
              {"down_block_types", repeated(levels, "DownEncoderBlock2D")},
              {"in_channels", c.in_channels},
              {"latent_channels", c.latent_channels},
              {"layers_per_block", c.layers_per_block},
              {"norm_num_groups", c.norm_num_groups},
              {"out_channels", c.out_channels},
              {"sample_size", c.sample_size},
              {"scaling_factor", c.scaling_factor},
              {"up_block_types", repeated(levels, "UpDecoderBlock2D")}});
  io::write_safetensors(folder / "diffusion_pytorch_model.safetensors", named_weights(vae));
}

void write_unet(const fs::path& folder, const models::UNetConfig& c, const torch::nn::Module& unet) {
  std::vector<std::string> down, up;
  for (bool attention : c.cross_attention) down.push_back(attention ? "CrossAttnDownBlock2D" : "DownBlock2D");
  for (auto it = c.cross_attention.rbegin(); it != c.cross_attention.rend(); ++it) {
    up.push_back(*it ? "CrossAttnUpBlock2D" : "UpBlock2D");
  }
  write_json(folder / "config.json",
             {{"_class_name", "UNet2DConditionModel"},
              {"_diffusers_version", kDiffusersVersion},
              {"act_fn", "silu"},
              // diffusers' legacy name: this is the number of heads.
              {"attention_head_dim", c.num_heads},
              {"block_out_channels", c.block_out_channels},
              {"cross_attention_dim", c.cross_attention_dim},
              {"down_block_types", down},
              {"flip_sin_to_cos", c.flip_sin_to_cos},
              {"freq_shift", c.freq_shift},
              {"in_channels", c.in_channels},
              {"layers_per_block", c.layers_per_block},
              {"mid_block_type", "UNetMidBlock2DCrossAttn"},
              {"norm_eps", c.norm_eps},
              {"norm_num_groups", c.norm_num_groups},
              {"out_channels", c.out_channels},
              {"sample_size", c.sample_size},
              {"transformer_layers_per_block", c.transformer_layers},
              {"up_block_types", up},
              {"use_linear_projection", c.use_linear_projection}});
  io::write_safetensors(folder / "diffusion_pytorch_model.safetensors", named_weights(unet));
}

void write_text_encoder(const fs::path& folder, const models::TextEncoderConfig& c, const torch::nn::Module& text_encoder) {
  write_json(folder / "config.json",
             {{"architectures", {"CLIPTextModel"}},
              {"model_type", "clip_text_model"},
              {"hidden_act", c.hidden_act},
              {"hidden_size", c.hidden_size},
              {"intermediate_size", c.intermediate_size},
              {"layer_norm_eps", c.layer_norm_eps},
              {"max_position_embeddings", c.max_positions},
              {"num_attention_heads", c.num_heads},
              {"num_hidden_layers", c.num_layers},
              {"projection_dim", c.hidden_size},
              {"vocab_size", c.vocab_size},
              {"bos_token_id", c.vocab_size - 2},
              {"eos_token_id", c.vocab_size - 1},
              {"pad_token_id", c.vocab_size - 1}});
  io::write_safetensors(folder / "model.safetensors", named_weights(text_encoder), {{"format", "pt"}});
}

ordered_json scheduler_config_json() {
  return {{"_class_name", "PNDMScheduler"},
          {"_diffusers_version", kDiffusersVersion},
          {"beta_end", 0.012},
          {"beta_schedule", "scaled_linear"},
          {"beta_start", 0.00085},
          {"clip_sample", false},
          {"num_train_timesteps", 1000},
          {"prediction_type", "epsilon"},
          {"set_alpha_to_one", false},
          {"skip_prk_steps", true},
          {"steps_offset", 1},
          {"timestep_spacing", "leading"}};
}

void write_pipeline_files(const fs::path& folder) {
  write_json(folder / "model_index.json",
             {{"_class_name", "StableDiffusionPipeline"},
              {"_diffusers_version", kDiffusersVersion},
              {"feature_extractor", {nullptr, nullptr}},
              {"requires_safety_checker", false},
              {"safety_checker", {nullptr, nullptr}},
              {"scheduler", {"diffusers", "PNDMScheduler"}},
              {"text_encoder", {"transformers", "CLIPTextModel"}},
              {"tokenizer", {"transformers", "CLIPTokenizer"}},
              {"unet", {"diffusers", "UNet2DConditionModel"}},
              {"vae", {"diffusers", "AutoencoderKL"}}});
  write_json(folder / "scheduler" / "scheduler_config.json", scheduler_config_json());
}

}  // namespace diffuse::train
