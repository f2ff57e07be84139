#pragma once
// Every size of every network lives here: SD 1.5 is one config among others, and the tiny
// fixtures run the same code. Configs come from diffusers' config.json or, for single-file
// checkpoints, from the tensor shapes (plus hints for what shapes can't tell, which pipeline/ takes
// from the file's original config: models/ knows no file layout).
// The members' initialisers are the defaults (SD 1.5's); each config's fields are listed once, in
// config.cpp, for both from_json and to_json.
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/tensor_map.h"

namespace diffuse::models {

// What a text encoder's tensor shapes cannot show; unset: the released models' values (64-wide
// heads; CLIP's quick_gelu, OpenCLIP's exact GELU; transformers' legacy token ids).
struct TextEncoderHints {
  bool open_clip = false;
  std::optional<int> num_heads;
  std::optional<std::string> hidden_act;
  std::optional<int> bos_token_id, eos_token_id, pad_token_id;
};

// What a UNet's tensor shapes cannot show; unset: SD 1.x's 8 heads (64-wide heads where the
// transformers project linearly, as SD 2.x and SDXL), 32 norm groups, SDXL's 256-wide size embeddings.
struct UNetHints {
  std::optional<int> num_heads;      // at every level
  std::optional<int> head_channels;  // or heads this wide at every level
  std::optional<int> sample_size;
  std::optional<int> added_conditioning_inputs;  // checked against add_embedding's shape
  std::optional<int> addition_time_embed_dim;
  std::optional<int> norm_num_groups;
};

struct VaeHints {
  std::optional<double> scaling_factor;
  std::optional<int> sample_size;
  std::optional<int> norm_num_groups;
};

struct TextEncoderConfig {
  int vocab_size = 49408;
  int hidden_size = 768;
  int intermediate_size = 3072;
  int num_layers = 12;
  int num_heads = 12;
  int max_positions = 77;
  std::string hidden_act = "quick_gelu";  // or "gelu"
  double layer_norm_eps = 1e-5;
  // > 0: CLIPTextModelWithProjection (SDXL's second encoder): a bias-free `text_projection`
  // [projection_dim, hidden_size] maps the pooled state. 0: CLIPTextModel, no projection.
  int projection_dim = 0;
  // Where pooled() reads: transformers' legacy 2 means "the position of the highest id" (CLIP's
  // end-of-text token 49407 has the highest id), any other value the first position holding it.
  int eos_token_id = 2;
  // Carried for the config.json transformers writes (SD's files say transformers' legacy 0 and 1;
  // the built-in model, trained with its own vocabulary, its real start and end ids).
  int bos_token_id = 0;
  int pad_token_id = 1;

  static TextEncoderConfig from_json(const nlohmann::json& config);
  // From the tensor shapes (diffusers names); with a text projection it is OpenCLIP.
  static TextEncoderConfig infer(const TensorMap& weights, const TextEncoderHints& hints = {});
  // The config.json transformers writes for this model; from_json reads it back to this config.
  nlohmann::json to_json() const;
};

struct UNetConfig {
  int in_channels = 4;
  int out_channels = 4;
  std::vector<int> block_out_channels = {320, 640, 1280, 1280};
  std::vector<bool> cross_attention = {true, true, true, false};  // per level, down blocks
  std::vector<int> num_heads = {8, 8, 8, 8};                      // per level
  std::vector<int> transformer_layers = {1, 1, 1, 1};             // per level
  int layers_per_block = 2;
  int cross_attention_dim = 768;
  bool use_linear_projection = false;
  int norm_num_groups = 32;
  double norm_eps = 1e-5;
  bool flip_sin_to_cos = true;
  int freq_shift = 0;
  int sample_size = 64;  // latent side the model was trained at
  // SDXL's added conditioning: "" (none) or "text_time": add_embedding(concat(pooled text embedding,
  // sinusoidal embedding of each time id, addition_time_embed_dim wide)) joins the timestep
  // embedding. projection_class_embeddings_input_dim = pooled width + time ids * time embed dim
  // (SDXL base: 1280 + 6 * 256 = 2816; the refiner's 5 time ids: 1280 + 5 * 256 = 2560).
  std::string addition_embed_type;
  int addition_time_embed_dim = 0;
  int projection_class_embeddings_input_dim = 0;
  // LCM-distilled UNets: the width of the guidance-scale embedding (timestep_cond) that
  // time_embedding.cond_proj maps onto the sinusoidal timestep embedding; 0: none.
  int time_cond_proj_dim = 0;

  int levels() const { return static_cast<int>(block_out_channels.size()); }
  int time_embed_dim() const { return block_out_channels.front() * 4; }
  bool text_time() const { return addition_embed_type == "text_time"; }

  static UNetConfig from_json(const nlohmann::json& config);
  static UNetConfig infer(const TensorMap& weights, const UNetHints& hints = {});
  // The config.json diffusers writes for this model; from_json reads it back to this config.
  nlohmann::json to_json() const;
};

// ControlNetModel: a copy of a UNet's encoder half (conv_in, time and added embeddings, down blocks,
// middle block) that also reads a control image through a small strided encoder (the hint
// encoder), and hands the UNet one residual per skip connection and one for the middle block,
// each through a 1x1 "zero" convolution.
struct ControlNetConfig {
  // The copied encoder's sizes, as the UNet it was made from has them (out_channels and the up
  // path are not part of a ControlNet).
  UNetConfig unet;
  int conditioning_channels = 3;  // of the control image
  // The hint encoder: conv_in to the first width, then per following width a stride-1 conv and a
  // stride-2 conv to it; so it downsamples by 2^(entries - 1), which must equal the VAE's factor.
  std::vector<int> conditioning_embedding_out_channels = {16, 32, 96, 256};
  // Residuals averaged over the image (shuffle nets); such nets run in guess mode.
  bool global_pool_conditions = false;
  std::string conditioning_channel_order = "rgb";  // "bgr": the image's channels are reversed first

  int hint_downscale_factor() const { return 1 << (conditioning_embedding_out_channels.size() - 1); }

  static ControlNetConfig from_json(const nlohmann::json& config);
  // From diffusers-named tensors. What shapes cannot tell (attention heads, norm groups, the size
  // embedding width) comes from `base`, the UNet the net runs with (its encoder is a copy of that
  // UNet's), or SD's defaults without one.
  static ControlNetConfig infer(const TensorMap& weights, const UNetConfig* base = nullptr);
  // The config.json diffusers writes for this model; from_json reads it back to this config.
  nlohmann::json to_json() const;
};

struct VaeConfig {
  int in_channels = 3;
  int out_channels = 3;
  int latent_channels = 4;
  std::vector<int> block_out_channels = {128, 256, 512, 512};
  int layers_per_block = 2;
  int norm_num_groups = 32;
  double scaling_factor = 0.18215;
  int sample_size = 512;

  // Pixels per latent along each side.
  int downscale_factor() const { return 1 << (block_out_channels.size() - 1); }

  static VaeConfig from_json(const nlohmann::json& config);
  static VaeConfig infer(const TensorMap& weights, const VaeHints& hints = {});
  nlohmann::json to_json() const;
};

// AutoencoderTiny (TAESD, madebyollin/taesd): a small convolutional encoder and decoder for the SD
// latent space. As diffusers' config.json; the original taesd.py files carry no config, so infer()
// reads it off their shapes (diffusers names, io/taesd_files.h maps the original ones).
struct TinyAutoencoderConfig {
  int in_channels = 3;
  int out_channels = 3;
  int latent_channels = 4;
  std::vector<int> encoder_block_out_channels = {64, 64, 64, 64};
  std::vector<int> decoder_block_out_channels = {64, 64, 64, 64};
  std::vector<int> num_encoder_blocks = {1, 3, 3, 3};  // blocks after the first conv and each stride-2 conv
  std::vector<int> num_decoder_blocks = {3, 3, 3, 1};  // blocks before each upsampling (none after the last)
  int upsampling_scaling_factor = 2;
  // 1.0 for SD's TAESD: its latents are already in the SD VAE's scaled space.
  double scaling_factor = 1.0;

  int downscale_factor() const;  // pixels per latent along a side
  bool has_encoder() const { return !num_encoder_blocks.empty(); }

  static TinyAutoencoderConfig from_json(const nlohmann::json& config);
  // From encoder.layers.<i>.* and decoder.layers.<i>.* (either part may be absent: then its block
  // lists are empty). Throws diffuse::Error naming `source` when the layers are not TAESD's.
  static TinyAutoencoderConfig infer(const TensorMap& weights, const std::string& source);
  // The config.json diffusers writes for this model; from_json reads it back to this config.
  nlohmann::json to_json() const;
};

}  // namespace diffuse::models
