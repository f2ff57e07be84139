#include "models/layers.h"

#include "models/attention.h"
#include "models/fused_ops.h"

namespace diffuse::models {

namespace F = torch::nn::functional;

torch::nn::GroupNorm group_norm(int64_t groups, int64_t channels, double eps) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, channels).eps(eps).affine(true));
}

at::Tensor normalize(torch::nn::GroupNorm& norm, const at::Tensor& x) {
  if (!use_fused_kernels(x)) return norm(x);
  const auto& o = norm->options;
  return fused_group_norm(x, o.num_groups(), norm->weight, norm->bias, o.eps(), false);
}

at::Tensor normalize_silu(torch::nn::GroupNorm& norm, const at::Tensor& x) {
  if (!use_fused_kernels(x)) return F::silu(norm(x));
  const auto& o = norm->options;
  return fused_group_norm(x, o.num_groups(), norm->weight, norm->bias, o.eps(), true);
}

at::Tensor normalize(torch::nn::LayerNorm& norm, const at::Tensor& x) {
  const auto& o = norm->options;
  if (!use_fused_kernels(x) || o.normalized_shape().size() != 1) return norm(x);
  return fused_layer_norm(x, norm->weight, norm->bias, o.eps());
}

Conv2d conv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding) {
  if (padding < 0) padding = kernel / 2;
  return Conv2d(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding));
}

ResnetBlock2DImpl::ResnetBlock2DImpl(int64_t in_channels, int64_t out_channels, int64_t temb_channels,
                                     int64_t groups, double eps) {
  norm1 = register_module("norm1", group_norm(groups, in_channels, eps));
  conv1 = register_module("conv1", conv2d(in_channels, out_channels, 3));
  if (temb_channels > 0) {
    time_emb_proj = register_module("time_emb_proj", Linear(temb_channels, out_channels));
  }
  norm2 = register_module("norm2", group_norm(groups, out_channels, eps));
  conv2 = register_module("conv2", conv2d(out_channels, out_channels, 3));
  if (in_channels != out_channels) {
    conv_shortcut = register_module("conv_shortcut", conv2d(in_channels, out_channels, 1));
  }
}

at::Tensor ResnetBlock2DImpl::forward(const at::Tensor& x, const at::Tensor& temb) {
  auto h = conv1(normalize_silu(norm1, x));
  if (time_emb_proj && temb.defined()) {
    h = h + time_emb_proj(F::silu(temb)).unsqueeze(-1).unsqueeze(-1);
  }
  h = conv2(normalize_silu(norm2, h));
  return (conv_shortcut ? conv_shortcut(x) : x) + h;
}

Downsample2DImpl::Downsample2DImpl(int64_t channels, bool asymmetric_padding_)
    : asymmetric_padding(asymmetric_padding_) {
  conv = register_module("conv", conv2d(channels, channels, 3, 2, asymmetric_padding ? 0 : 1));
}

at::Tensor Downsample2DImpl::forward(const at::Tensor& x) {
  if (asymmetric_padding) return conv(F::pad(x, F::PadFuncOptions({0, 1, 0, 1})));
  return conv(x);
}

Upsample2DImpl::Upsample2DImpl(int64_t channels) { conv = register_module("conv", conv2d(channels, channels, 3)); }

at::Tensor Upsample2DImpl::forward(const at::Tensor& x, c10::optional<std::vector<int64_t>> size) {
  auto options = F::InterpolateFuncOptions().mode(torch::kNearest);
  if (size) {
    options.size(*size);
  } else {
    options.scale_factor(std::vector<double>{2.0, 2.0});
  }
  return conv(F::interpolate(x, options));
}

AttentionImpl::AttentionImpl(int64_t query_dim, int64_t context_dim, int64_t heads_, int64_t head_dim, bool qkv_bias)
    : heads(heads_) {
  const int64_t inner = heads * head_dim;
  to_q = register_module("to_q", Linear(torch::nn::LinearOptions(query_dim, inner).bias(qkv_bias)));
  to_k = register_module("to_k", Linear(torch::nn::LinearOptions(context_dim, inner).bias(qkv_bias)));
  to_v = register_module("to_v", Linear(torch::nn::LinearOptions(context_dim, inner).bias(qkv_bias)));
  out_proj = Linear(inner, query_dim);
  to_out->push_back(out_proj);
  register_module("to_out", to_out);
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, const at::Tensor& context) {
  const auto& source = context.defined() ? context : x;
  return out_proj(scaled_dot_product_attention(to_q(x), to_k(source), to_v(source), heads));
}

}  // namespace diffuse::models
