#include "random_model.h"

#include <torch/torch.h>

#include "io/ldm_export.h"
#include "io/safetensors_writer.h"
#include "models/clip_text_encoder.h"
#include "models/taesd.h"
#include "models/unet.h"
#include "models/vae.h"
#include "util/error.h"

namespace diffuse::bench {

namespace {

// The module's parameters in fp16. Built with fp16 as the default type, so the largest UNet
// never exists in fp32 (3.4 GB for SD 1.5) just to be rounded.
template <typename Module, typename Config>
TensorMap random_fp16_weights(const Config& config) {
  const auto previous = c10::get_default_dtype();
  c10::set_default_dtype(caffe2::TypeMeta::Make<c10::Half>());
  TensorMap weights;
  try {
    Module module(config);
    for (const auto& item : module->named_parameters(true)) weights.emplace(item.key(), item.value().detach());
  } catch (...) {
    c10::set_default_dtype(previous);
    throw;
  }
  c10::set_default_dtype(previous);
  return weights;
}

int64_t count(const TensorMap& weights) {
  int64_t total = 0;
  for (const auto& [name, tensor] : weights) total += tensor.numel();
  return total;
}

}  // namespace

std::vector<std::string> architecture_names() { return {"sd15", "sd21", "sdxl"}; }

namespace {

// OpenCLIP's text towers as transformers' CLIPTextModel(WithProjection) configs.
models::TextEncoderConfig open_clip(int width, int layers, int heads, int projection) {
  models::TextEncoderConfig c;
  c.hidden_size = width;
  c.num_layers = layers;
  c.num_heads = heads;
  c.intermediate_size = 4 * width;
  c.hidden_act = "gelu";
  c.projection_dim = projection;
  return c;
}

}  // namespace

Architecture find_architecture(const std::string& name) {
  // The configs' defaults are SD 1.5 (config.h).
  if (name == "sd15") return Architecture{name, {}, {}, {}, std::nullopt, false, 512};
  if (name == "sd21") {
    // stabilityai/stable-diffusion-2-1 (768-v): 64-wide heads, linear projections, OpenCLIP-H with
    // the 23 layers it uses (the 24th is written, as in the released file, and skipped on load).
    Architecture a{name, {}, {}, open_clip(1024, 23, 16, 0), std::nullopt, true, 768};
    a.unet.num_heads = {5, 10, 20, 20};
    a.unet.cross_attention_dim = 1024;
    a.unet.use_linear_projection = true;
    a.unet.sample_size = 96;
    a.vae.sample_size = 768;
    return a;
  }
  if (name == "sdxl") {
    // stabilityai/stable-diffusion-xl-base-1.0.
    Architecture a{name, {}, {}, {}, open_clip(1280, 32, 20, 1280), false, 1024};
    auto& u = a.unet;
    u.block_out_channels = {320, 640, 1280};
    u.cross_attention = {false, true, true};
    u.num_heads = {5, 10, 20};
    u.transformer_layers = {1, 2, 10};
    u.cross_attention_dim = 2048;
    u.use_linear_projection = true;
    u.sample_size = 128;
    u.addition_embed_type = "text_time";
    u.addition_time_embed_dim = 256;
    u.projection_class_embeddings_input_dim = 2816;
    a.vae.scaling_factor = 0.13025;
    a.vae.sample_size = 1024;
    return a;
  }
  std::string known;
  for (const auto& candidate : architecture_names()) known += (known.empty() ? "" : ", ") + candidate;
  throw Error("--arch: unknown architecture '" + name + "'; known: " + known);
}

int64_t write_random_checkpoint(const Architecture& architecture, const std::filesystem::path& path, uint64_t seed) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  const auto unet = random_fp16_weights<models::UNet2DConditionModel>(architecture.unet);
  const auto vae = random_fp16_weights<models::AutoencoderKL>(architecture.vae);
  const auto text = random_fp16_weights<models::ClipTextModel>(architecture.text_encoder);
  TensorMap text_2;
  if (architecture.text_encoder_2) text_2 = random_fp16_weights<models::ClipTextModel>(*architecture.text_encoder_2);
  if (!path.parent_path().empty()) std::filesystem::create_directories(path.parent_path());
  const auto exported =
      architecture.text_encoder_2
          ? io::export_ldm_checkpoint(unet, vae, text, text_2)
          : io::export_ldm_checkpoint(unet, vae, text,
                                      architecture.open_clip ? io::TextEncoderLayout::OpenClip : io::TextEncoderLayout::Clip);
  io::write_safetensors(path, exported, {{"format", "pt"}, {"diffuse_bench", architecture.name + " random weights"}});
  return count(unet) + count(vae) + count(text) + count(text_2);
}

int64_t write_random_taesd(const std::filesystem::path& folder, uint64_t seed) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  const auto weights = random_fp16_weights<models::TinyAutoencoder>(models::TinyAutoencoderConfig{});
  // taesd.py's names: the encoder's indices as they are, the decoder's one up (its index 0 is the clamp).
  TensorMap encoder, decoder;
  for (const auto& [name, tensor] : weights) {
    const bool is_encoder = name.rfind("encoder.layers.", 0) == 0;
    const auto rest = name.substr(std::string(is_encoder ? "encoder.layers." : "decoder.layers.").size());
    const auto dot = rest.find('.');
    const int index = std::stoi(rest.substr(0, dot)) + (is_encoder ? 0 : 1);
    (is_encoder ? encoder : decoder).emplace(std::to_string(index) + rest.substr(dot), tensor);
  }
  std::filesystem::create_directories(folder);
  io::write_safetensors(folder / "taesd_encoder.safetensors", encoder, {{"diffuse_bench", "random TAESD encoder"}});
  io::write_safetensors(folder / "taesd_decoder.safetensors", decoder, {{"diffuse_bench", "random TAESD decoder"}});
  return count(weights);
}

int64_t write_random_upscaler(const models::RrdbNetConfig& config, const std::filesystem::path& path, uint64_t seed) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  models::RrdbNet net(config);
  TensorMap weights;
  for (const auto& parameter : net->named_parameters()) weights.emplace(parameter.key(), parameter.value().detach());
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  io::write_safetensors(path, weights, {{"diffuse_bench", "random RRDBNet"}});
  return count(weights);
}

}  // namespace diffuse::bench
