#pragma once
// A Stable Diffusion model ready to run: tokenizer, text encoder, UNet, VAE and the noise
// schedule's config, whatever the file layout it came from.
#include <filesystem>
#include <optional>
#include <string>

#include <torch/torch.h>

#include "models/clip_text_encoder.h"
#include "models/unet.h"
#include "models/vae.h"
#include "sampling/sampling.h"
#include "text/clip_tokenizer.h"

namespace diffuse::pipeline {

struct LoadOptions {
  // vocab.json + merges.txt folder (or either file), or bpe_simple_vocab_16e6.txt.gz; overrides
  // whatever the model brings.
  std::optional<std::filesystem::path> tokenizer;
  // A diffusers scheduler_config.json that replaces the model's own (or a single file's defaults).
  std::optional<std::filesystem::path> scheduler_config;
};

class StableDiffusionModel {
 public:
  // `path`: a diffusers folder or a single-file .safetensors checkpoint. Throws diffuse::Error
  // naming the file or tensor at fault.
  static StableDiffusionModel load(const std::filesystem::path& path, const LoadOptions& options = {});

  // [1, tokens, dim] conditioning for one prompt, padded to the tokenizer's length.
  at::Tensor encode_prompt(const std::string& prompt);
  // Scaled latents (as samplers produce them) -> images in about [-1, 1].
  at::Tensor decode_latents(const at::Tensor& latents);

  // Pixels per latent along a side, and the image side the model was trained at.
  int vae_scale_factor() const { return vae->config.downscale_factor(); }
  int default_image_size() const { return unet->config.sample_size * vae_scale_factor(); }
  int latent_channels() const { return unet->config.in_channels; }

  std::string name;  // file or folder name, for the PNG's parameters
  text::ClipTokenizer tokenizer;
  models::ClipTextModel text_encoder{nullptr};
  models::UNet2DConditionModel unet{nullptr};
  models::AutoencoderKL vae{nullptr};
  sampling::SchedulerConfig scheduler;

 private:
  explicit StableDiffusionModel(text::ClipTokenizer tokenizer_) : tokenizer(std::move(tokenizer_)) {}
};

}  // namespace diffuse::pipeline
