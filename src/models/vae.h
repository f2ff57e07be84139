#pragma once
// AutoencoderKL: images to latents (encoder) and back (decoder).
#include <torch/torch.h>

#include "models/config.h"
#include "models/layers.h"

namespace diffuse::models {

// Single-head self-attention over all pixels, with group norm and a residual (the VAE mid block).
struct VaeAttentionImpl : torch::nn::Module {
  VaeAttentionImpl(int64_t channels, int64_t groups);
  at::Tensor forward(const at::Tensor& x);

  torch::nn::GroupNorm group_norm{nullptr};
  Attention attention{nullptr};
};
TORCH_MODULE(VaeAttention);

struct VaeMidBlockImpl : torch::nn::Module {
  VaeMidBlockImpl(int64_t channels, int64_t groups);
  at::Tensor forward(at::Tensor x);

  torch::nn::ModuleList resnets, attentions;
};
TORCH_MODULE(VaeMidBlock);

// A resolution level: resnets, then a resampler (down in the encoder, up in the decoder) except at the end.
struct VaeLevelImpl : torch::nn::Module {
  VaeLevelImpl(int64_t in, int64_t out, int layers, int64_t groups, bool downsample, bool upsample);
  at::Tensor forward(at::Tensor x);

  torch::nn::ModuleList resnets, downsamplers, upsamplers;
};
TORCH_MODULE(VaeLevel);

struct EncoderImpl : torch::nn::Module {
  explicit EncoderImpl(const VaeConfig& config);
  at::Tensor forward(const at::Tensor& image);  // -> [B, 2*latent, h, w] moments

  Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList down_blocks;
  VaeMidBlock mid_block{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(Encoder);

struct DecoderImpl : torch::nn::Module {
  explicit DecoderImpl(const VaeConfig& config);
  at::Tensor forward(const at::Tensor& latent);

  Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList up_blocks;
  VaeMidBlock mid_block{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(Decoder);

// The latent distribution the encoder describes.
struct LatentDistribution {
  at::Tensor mean, logvar, std;
  // mean + std * eps, eps drawn from `generator` as diffusers' DiagonalGaussianDistribution.sample.
  at::Tensor sample(at::Generator& generator) const;
};

struct AutoencoderKLImpl : torch::nn::Module {
  explicit AutoencoderKLImpl(const VaeConfig& config);
  // image in [-1, 1], [B, 3, H, W].
  LatentDistribution encode(const at::Tensor& image);
  // Unscaled latent (divide by scaling_factor first) -> image in about [-1, 1].
  at::Tensor decode(const at::Tensor& latent);
  // The same in overlapping tiles of the training size (at most kMaxTilePixels), blended over a
  // quarter tile as diffusers' tiled_decode, so memory stays that of one tile's decode whatever the
  // latent's size. SD 1.x tiles as diffusers does (512); SDXL's VAE, trained at 1024, would not tile
  // a 1024x1024 image at all, whose plain decode needs about 3 GB on top of the weights.
  // `on_tile(done, total)` after each tile. Tiles are blended, and returned, in fp32.
  at::Tensor decode_tiled(const at::Tensor& latent, const std::function<void(int, int)>& on_tile = {});
  // Tiles decode_tiled() makes for a latent of this height and width (1 when it fits in one).
  int tile_count(int64_t latent_height, int64_t latent_width) const;
  static constexpr int64_t kMaxTilePixels = 512;
  int64_t tile_latents() const;  // a tile's side in latents

  VaeConfig config;
  Encoder encoder{nullptr};
  Decoder decoder{nullptr};
  Conv2d quant_conv{nullptr}, post_quant_conv{nullptr};
};
TORCH_MODULE(AutoencoderKL);

}  // namespace diffuse::models
