#pragma once
// AutoencoderTiny (TAESD): a 2.4M-parameter stand-in for the SD VAE, as diffusers builds it. Its
// module tree is diffusers' weight map (encoder.layers.<i>, decoder.layers.<i>).
#include <torch/torch.h>

#include "models/config.h"
#include "models/conv.h"

namespace diffuse::models {

// conv, ReLU, conv, ReLU, conv, plus the input (through a 1x1 conv when the widths differ), then ReLU.
struct TinyBlockImpl : torch::nn::Module {
  TinyBlockImpl(int64_t in_channels, int64_t out_channels);
  at::Tensor forward(const at::Tensor& x);

  torch::nn::Sequential conv{nullptr};
  Conv2d skip{nullptr};  // undefined when in = out
};
TORCH_MODULE(TinyBlock);

struct TinyEncoderImpl : torch::nn::Module {
  explicit TinyEncoderImpl(const TinyAutoencoderConfig& config);
  torch::nn::Sequential layers{nullptr};
};
TORCH_MODULE(TinyEncoder);

struct TinyDecoderImpl : torch::nn::Module {
  explicit TinyDecoderImpl(const TinyAutoencoderConfig& config);
  torch::nn::Sequential layers{nullptr};
};
TORCH_MODULE(TinyDecoder);

struct TinyAutoencoderImpl : torch::nn::Module {
  // A config without encoder blocks builds the decoder alone (a taesd_decoder file by itself).
  explicit TinyAutoencoderImpl(const TinyAutoencoderConfig& config);
  // image in [-1, 1], [B, 3, H, W] -> latents in the SD UNet's (scaled) space, deterministic.
  at::Tensor encode(const at::Tensor& image);
  // Latents / scaling_factor -> image in about [-1, 1] (not clamped): 2 * layers(tanh(z/3)*3) - 1.
  at::Tensor decode(const at::Tensor& latents);

  TinyAutoencoderConfig config;
  TinyEncoder encoder{nullptr};  // null without encoder blocks
  TinyDecoder decoder{nullptr};
};
TORCH_MODULE(TinyAutoencoder);

}  // namespace diffuse::models
