#include "models/transformer.h"

#include "models/fused_ops.h"

namespace diffuse::models {

GEGLUImpl::GEGLUImpl(int64_t dim, int64_t inner) { proj = register_module("proj", Linear(dim, inner * 2)); }

at::Tensor GEGLUImpl::forward(const at::Tensor& x) {
  auto projected = proj(x);
  if (use_fused_kernels(projected)) return fused_geglu(projected);
  auto parts = projected.chunk(2, -1);
  return parts[0] * at::gelu(parts[1]);
}

BasicTransformerBlockImpl::BasicTransformerBlockImpl(int64_t dim, int64_t heads, int64_t context_dim) {
  const auto layer_norm = [dim] { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-5)); };
  norm1 = register_module("norm1", layer_norm());
  attn1 = register_module("attn1", Attention(dim, dim, heads, dim / heads, false));
  norm2 = register_module("norm2", layer_norm());
  attn2 = register_module("attn2", Attention(dim, context_dim, heads, dim / heads, false));
  norm3 = register_module("norm3", layer_norm());
  ff_in = GEGLU(dim, dim * 4);
  ff_out = Linear(dim * 4, dim);
  ff_net->push_back(ff_in);
  ff_net->push_back(torch::nn::Dropout(0.0));
  ff_net->push_back(ff_out);
  auto ff = std::make_shared<torch::nn::Module>("FeedForward");
  ff->register_module("net", ff_net);
  register_module("ff", ff);
}

at::Tensor BasicTransformerBlockImpl::forward(const at::Tensor& x, const at::Tensor& context) {
  auto h = attn1(normalize(norm1, x)) + x;
  h = attn2(normalize(norm2, h), context) + h;
  return ff_out(ff_in(normalize(norm3, h))) + h;
}

Transformer2DModelImpl::Transformer2DModelImpl(int64_t channels, int64_t heads, int64_t layers, int64_t context_dim,
                                               int64_t groups, bool linear_projection_)
    : linear_projection(linear_projection_) {
  norm = register_module("norm", group_norm(groups, channels, 1e-6));
  if (linear_projection) {
    proj_in = torch::nn::AnyModule(register_module("proj_in", Linear(channels, channels)));
  } else {
    proj_in = torch::nn::AnyModule(register_module("proj_in", conv2d(channels, channels, 1)));
  }
  for (int64_t i = 0; i < layers; ++i) {
    transformer_blocks->push_back(BasicTransformerBlock(channels, heads, context_dim));
  }
  register_module("transformer_blocks", transformer_blocks);
  if (linear_projection) {
    proj_out = torch::nn::AnyModule(register_module("proj_out", Linear(channels, channels)));
  } else {
    proj_out = torch::nn::AnyModule(register_module("proj_out", conv2d(channels, channels, 1)));
  }
}

at::Tensor Transformer2DModelImpl::forward(const at::Tensor& x, const at::Tensor& context) {
  const auto b = x.size(0), height = x.size(2), width = x.size(3);
  auto h = normalize(norm, x);
  const auto to_tokens = [&](const at::Tensor& t) { return t.permute({0, 2, 3, 1}).reshape({b, height * width, -1}); };
  const auto to_image = [&](const at::Tensor& t) {
    return t.reshape({b, height, width, -1}).permute({0, 3, 1, 2}).contiguous();
  };
  h = linear_projection ? proj_in.forward(to_tokens(h)) : to_tokens(proj_in.forward(h));
  for (const auto& block : *transformer_blocks) {
    h = block->as<BasicTransformerBlockImpl>()->forward(h, context);
  }
  h = linear_projection ? to_image(proj_out.forward(h)) : proj_out.forward(to_image(h));
  return h + x;
}

}  // namespace diffuse::models
