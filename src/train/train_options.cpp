#include "train/train_options.h"

#include <algorithm>

#include "util/error.h"

namespace diffuse::train {

#define DIFFUSE_TRAIN_FIELDS(X)                                                                              \
  X(dataset) X(seed) X(resolution) X(shapes_count) X(vae_channels) X(vae_layers) X(latent_channels)         \
  X(vae_steps) X(vae_batch) X(vae_lr) X(kl_weight) X(bpe_merges) X(text_hidden) X(text_layers) X(text_heads) \
  X(max_tokens) X(unet_channels) X(unet_layers) X(unet_heads) X(unet_attention_from) X(unet_steps) X(unet_batch) X(unet_lr)        \
  X(caption_dropout) X(ema_decay) X(checkpoint_every) X(command)

nlohmann::json options_to_json(const TrainOptions& o) {
  nlohmann::json json;
#define X(name) json[#name] = o.name;
  DIFFUSE_TRAIN_FIELDS(X)
#undef X
  return json;
}

TrainOptions options_from_json(const nlohmann::json& json) {
  TrainOptions o;
  try {
#define X(name) \
  if (json.contains(#name)) json.at(#name).get_to(o.name);
    DIFFUSE_TRAIN_FIELDS(X)
#undef X
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("training options: ") + e.what());
  }
  return o;
}

namespace {

void require(bool ok, const std::string& parameter, const std::string& problem) {
  if (!ok) throw InvalidParameter(parameter, problem);
}

// GroupNorm needs every width divisible by the group count. Groups also need several channels
// each: a group of one channel is instance norm, which erases each channel's mean over the image,
// and with it the flat background colour (a VAE with 8-channel levels in 8 groups never learnt to
// reconstruct colours). So: the most groups, up to SD's 32, that divide every width and leave the
// narrowest at least 8 channels per group.
int groups_for(const std::vector<int>& channels) {
  const int narrowest = *std::min_element(channels.begin(), channels.end());
  int groups = 32;
  while (groups > 1 && narrowest / groups < 8) groups /= 2;
  for (int c : channels) {
    while (c % groups != 0) groups /= 2;
  }
  return groups;
}

}  // namespace

void validate(const TrainOptions& o) {
  require(o.resolution >= 32 && o.resolution % 8 == 0, "resolution", "must be a multiple of 8, at least 32");
  require(o.shapes_count >= 1, "shapes_count", "must be at least 1");
  require(o.vae_channels.size() >= 2 && o.vae_channels.size() <= 4, "vae_channels", "give 2 to 4 widths");
  require(o.resolution % (1 << (o.vae_channels.size() - 1)) == 0, "resolution", "not divisible by the VAE's downscale");
  require(o.unet_channels.size() >= 2, "unet_channels", "give at least 2 widths");
  for (int c : o.vae_channels) require(c >= 8 && c % 8 == 0, "vae_channels", "widths must be multiples of 8");
  for (int c : o.unet_channels) require(c >= 32 && c % 32 == 0, "unet_channels", "widths must be multiples of 32");
  const int latent_side = o.resolution >> (o.vae_channels.size() - 1);
  require(latent_side % (1 << (o.unet_channels.size() - 1)) == 0,
          "unet_channels", "too many levels for a " + std::to_string(latent_side) + "-pixel latent");
  require(o.unet_channels.front() % o.unet_heads == 0, "unet_heads", "must divide every UNet width");
  require(o.unet_attention_from >= 0 && o.unet_attention_from < static_cast<int>(o.unet_channels.size()),
          "unet_attention_from", "must name one of the UNet's levels");
  require(o.text_hidden % o.text_heads == 0, "text_heads", "must divide text_hidden");
  require(o.max_tokens >= 4, "max_tokens", "must be at least 4");
  require(o.latent_channels >= 1, "latent_channels", "must be at least 1");
  for (auto [parameter, value] : {std::pair{"vae_steps", o.vae_steps}, std::pair{"unet_steps", o.unet_steps},
                                  std::pair{"vae_batch", o.vae_batch}, std::pair{"unet_batch", o.unet_batch},
                                  std::pair{"vae_layers", o.vae_layers}, std::pair{"unet_layers", o.unet_layers},
                                  std::pair{"text_layers", o.text_layers}, std::pair{"checkpoint_every", o.checkpoint_every}}) {
    require(value >= 1, parameter, "must be at least 1");
  }
  require(o.vae_lr > 0, "vae_lr", "must be positive");
  require(o.unet_lr > 0, "unet_lr", "must be positive");
  require(o.caption_dropout >= 0 && o.caption_dropout < 1, "caption_dropout", "must be in [0, 1)");
  require(o.ema_decay >= 0 && o.ema_decay < 1, "ema_decay", "must be in [0, 1)");
}

models::VaeConfig vae_config(const TrainOptions& o) {
  models::VaeConfig c;
  c.latent_channels = o.latent_channels;
  c.block_out_channels = o.vae_channels;
  c.layers_per_block = o.vae_layers;
  c.norm_num_groups = groups_for(o.vae_channels);
  c.sample_size = o.resolution;
  c.scaling_factor = 1.0;  // measured on the data after stage 1
  return c;
}

models::TextEncoderConfig text_encoder_config(const TrainOptions& o, int vocab_size) {
  models::TextEncoderConfig c;
  c.vocab_size = vocab_size;
  c.hidden_size = o.text_hidden;
  c.intermediate_size = 4 * o.text_hidden;
  c.num_layers = o.text_layers;
  c.num_heads = o.text_heads;
  c.max_positions = o.max_tokens;
  // The trained vocabulary ends with the start and end tokens (train/bpe_trainer.h): its real ids, as
  // the tokenizer gives them; pooling reads the end token, the highest id, either way.
  c.bos_token_id = vocab_size - 2;
  c.eos_token_id = c.pad_token_id = vocab_size - 1;
  return c;
}

models::UNetConfig unet_config(const TrainOptions& o) {
  models::UNetConfig c;
  c.in_channels = c.out_channels = o.latent_channels;
  c.block_out_channels = o.unet_channels;
  const size_t levels = o.unet_channels.size();
  c.cross_attention.clear();
  for (size_t level = 0; level < levels; ++level) c.cross_attention.push_back(static_cast<int>(level) >= o.unet_attention_from);
  c.num_heads.assign(levels, o.unet_heads);
  c.transformer_layers.assign(levels, 1);
  c.layers_per_block = o.unet_layers;
  c.cross_attention_dim = o.text_hidden;
  c.norm_num_groups = groups_for(o.unet_channels);
  c.sample_size = o.resolution >> (o.vae_channels.size() - 1);
  return c;
}

}  // namespace diffuse::train
