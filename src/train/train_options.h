// Everything `diffuse train` can be told, with the defaults that train the built-in model.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/config.h"

namespace diffuse::train {

struct TrainOptions {
  std::string dataset = "shapes";  // "shapes" or a folder of NAME.png + NAME.txt
  std::filesystem::path output;
  uint64_t seed = 1;
  int resolution = 64;
  int shapes_count = 4000;  // images the shapes dataset generates

  // Stage 1: AutoencoderKL. Downscale = 2^(levels-1).
  std::vector<int> vae_channels = {16, 32, 32};
  int vae_layers = 1;
  int latent_channels = 4;
  int vae_steps = 2000;
  int vae_batch = 8;
  double vae_lr = 1e-3;
  double kl_weight = 1e-5;  // small, as the original: the latent stays close to an autoencoder's

  // Stage 2: CLIP-architecture text encoder + UNet on the diffusion loss.
  int bpe_merges = 2000;
  int text_hidden = 64;
  int text_layers = 2;
  int text_heads = 4;
  int max_tokens = 32;  // includes start and end tokens
  std::vector<int> unet_channels = {32, 64, 64};
  int unet_layers = 1;
  int unet_heads = 4;
  int unet_attention_from = 1;  // first level with attention: full-resolution attention costs the most
  int unet_steps = 6000;
  int unet_batch = 16;
  double unet_lr = 1e-3;
  double caption_dropout = 0.1;  // fraction trained on "" so classifier-free guidance works
  double ema_decay = 0.999;      // 0 disables the exponential moving average of the weights

  int checkpoint_every = 250;  // steps
  int threads = 0;             // 0: libtorch's default
  bool resume = false;
  int stop_after = 0;          // leave a checkpoint and stop after this many steps of this run (0: run to the end)
  std::string command;         // the command line, for the training record
};

nlohmann::json options_to_json(const TrainOptions& options);
TrainOptions options_from_json(const nlohmann::json& json);
// Rejects impossible sizes and rates, naming the option as the command line spells it.
void validate(const TrainOptions& options);

models::VaeConfig vae_config(const TrainOptions& options);
models::TextEncoderConfig text_encoder_config(const TrainOptions& options, int vocab_size);
models::UNetConfig unet_config(const TrainOptions& options);

}  // namespace diffuse::train
