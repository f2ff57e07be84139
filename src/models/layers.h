#pragma once
// Building blocks shared by the UNet and the VAE, named as diffusers names them so that the
// module tree is the weight map.
#include <torch/torch.h>

#include "models/conv.h"
#include "models/linear.h"

namespace diffuse::models {

torch::nn::GroupNorm group_norm(int64_t groups, int64_t channels, double eps);
Conv2d conv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = -1);

// The norms as their modules compute them, through the fused bf16 kernels (models/fused_ops.h)
// wherever those apply; normalize_silu adds the SiLU that follows most group norms.
at::Tensor normalize(torch::nn::GroupNorm& norm, const at::Tensor& x);
at::Tensor normalize_silu(torch::nn::GroupNorm& norm, const at::Tensor& x);
at::Tensor normalize(torch::nn::LayerNorm& norm, const at::Tensor& x);

// ResnetBlock2D: two 3x3 convs with group norms, an optional timestep embedding added in
// between, and a 1x1 shortcut when the channel count changes.
struct ResnetBlock2DImpl : torch::nn::Module {
  ResnetBlock2DImpl(int64_t in_channels, int64_t out_channels, int64_t temb_channels, int64_t groups, double eps);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& temb = at::Tensor());

  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  Conv2d conv1{nullptr}, conv2{nullptr}, conv_shortcut{nullptr};
  Linear time_emb_proj{nullptr};
};
TORCH_MODULE(ResnetBlock2D);

// Stride-2 conv. The VAE pads asymmetrically (right/bottom) with padding 0, the UNet pads 1.
struct Downsample2DImpl : torch::nn::Module {
  Downsample2DImpl(int64_t channels, bool asymmetric_padding);
  at::Tensor forward(const at::Tensor& x);

  Conv2d conv{nullptr};
  bool asymmetric_padding;
};
TORCH_MODULE(Downsample2D);

// Nearest-neighbour 2x (or to `size`) followed by a 3x3 conv.
struct Upsample2DImpl : torch::nn::Module {
  explicit Upsample2DImpl(int64_t channels);
  at::Tensor forward(const at::Tensor& x, c10::optional<std::vector<int64_t>> size = c10::nullopt);

  Conv2d conv{nullptr};
};
TORCH_MODULE(Upsample2D);

// diffusers' Attention: q/k/v projections, multi-head attention, output projection (`to_out.0`).
struct AttentionImpl : torch::nn::Module {
  AttentionImpl(int64_t query_dim, int64_t context_dim, int64_t heads, int64_t head_dim, bool qkv_bias);
  // `context` undefined means self-attention.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& context = at::Tensor());

  Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr};
  torch::nn::ModuleList to_out;
  Linear out_proj{nullptr};  // alias of to_out[0]
  int64_t heads;
};
TORCH_MODULE(Attention);

}  // namespace diffuse::models
