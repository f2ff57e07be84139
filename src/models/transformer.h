#pragma once
// The spatial transformer the UNet runs at its attention levels (diffusers' Transformer2DModel).
#include <torch/torch.h>

#include "models/layers.h"

namespace diffuse::models {

// Linear(dim, 2*inner) split into value and gate; value * gelu(gate).
struct GEGLUImpl : torch::nn::Module {
  GEGLUImpl(int64_t dim, int64_t inner);
  at::Tensor forward(const at::Tensor& x);
  Linear proj{nullptr};
};
TORCH_MODULE(GEGLU);

// Self-attention, cross-attention on the text, then a GEGLU feed-forward; each pre-normed and residual.
struct BasicTransformerBlockImpl : torch::nn::Module {
  BasicTransformerBlockImpl(int64_t dim, int64_t heads, int64_t context_dim);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& context);

  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
  Attention attn1{nullptr}, attn2{nullptr};
  torch::nn::ModuleList ff_net;  // registered as "ff.net": [GEGLU, Dropout, Linear]
  GEGLU ff_in{nullptr};
  Linear ff_out{nullptr};
};
TORCH_MODULE(BasicTransformerBlock);

struct Transformer2DModelImpl : torch::nn::Module {
  Transformer2DModelImpl(int64_t channels, int64_t heads, int64_t layers, int64_t context_dim, int64_t groups,
                         bool linear_projection);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& context);

  torch::nn::GroupNorm norm{nullptr};
  torch::nn::AnyModule proj_in, proj_out;  // 1x1 conv (SD 1.x) or linear (SD 2.x)
  torch::nn::ModuleList transformer_blocks;
  bool linear_projection;
};
TORCH_MODULE(Transformer2DModel);

}  // namespace diffuse::models
