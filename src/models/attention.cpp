#include "models/attention.h"

#include <algorithm>
#include <cmath>

#include "models/fused_attention.h"
#include "models/kernel_options.h"

namespace diffuse::models {

namespace {

// Bound on one chunk's score matrix (elements): 4096x4096x8 heads x 2 would otherwise be 1 GiB.
constexpr int64_t kMaxScoreElements = int64_t(1) << 24;
// Bound on one block's score matrix (bytes) in the blocked variant. Measured at 4096 tokens,
// 2 cores: 4 MiB blocks (cache-sized, but tiny products) ran 1.4x slower than the chunked
// version; 64 MiB blocks run 1.4x (bf16) and 1.25x (fp32) faster than it.
constexpr int64_t kBlockScoreBytes = int64_t(64) << 20;

at::Tensor split_heads(const at::Tensor& x, int64_t heads) {
  const auto b = x.size(0), n = x.size(1), d = x.size(2) / heads;
  return x.reshape({b, n, heads, d}).permute({0, 2, 1, 3}).reshape({b * heads, n, d});
}

at::Tensor chunked(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                   const at::Tensor& causal_mask) {
  const auto batch = q.size(0), queries = q.size(1), width = q.size(2);
  const auto head_dim = width / heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  const auto qh = split_heads(q, heads);
  const auto kt = split_heads(k, heads).transpose(1, 2);
  const auto vh = split_heads(v, heads);
  const int64_t keys = kt.size(2);
  const int64_t rows = std::max<int64_t>(1, kMaxScoreElements / (batch * heads * keys));
  auto out = at::empty({batch * heads, queries, head_dim}, q.options());
  for (int64_t start = 0; start < queries; start += rows) {
    const auto end = std::min(queries, start + rows);
    auto scores = at::bmm(qh.slice(1, start, end), kt).mul_(scale);
    if (causal_mask.defined()) scores.add_(causal_mask.slice(0, start, end));
    out.slice(1, start, end).copy_(at::bmm(scores.softmax(-1), vh));
  }
  return out.reshape({batch, heads, queries, head_dim}).permute({0, 2, 1, 3}).reshape({batch, queries, width});
}

// Same arithmetic, fewer passes over memory: the scale folded into q (N x d, not N x M),
// softmax in place, and the output written in [B, N, heads, d] order so that merging the heads
// is free.
at::Tensor blocked(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                   const at::Tensor& causal_mask) {
  const auto batch = q.size(0), queries = q.size(1), width = q.size(2);
  const auto head_dim = width / heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  const auto qh = split_heads(q * scale, heads);
  const auto kt = split_heads(k, heads).transpose(1, 2);
  const auto vh = split_heads(v, heads);
  const int64_t keys = kt.size(2);
  const int64_t bytes_per_row = batch * heads * keys * q.element_size();
  const int64_t rows = std::clamp<int64_t>(kBlockScoreBytes / bytes_per_row, 1, queries);
  auto out = at::empty({batch, queries, heads, head_dim}, q.options());
  for (int64_t start = 0; start < queries; start += rows) {
    const auto end = std::min(queries, start + rows);
    auto scores = at::bmm(qh.slice(1, start, end), kt);
    if (causal_mask.defined()) scores.add_(causal_mask.slice(0, start, end));
    at::_softmax_out(scores, scores, -1, false);
    out.slice(1, start, end).copy_(at::bmm(scores, vh).view({batch, heads, end - start, head_dim}).permute({0, 2, 1, 3}));
  }
  return out.view({batch, queries, width});
}

}  // namespace

at::Tensor scaled_dot_product_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                                        const at::Tensor& causal_mask) {
  // The blocked and fused versions cannot be differentiated: training takes the chunked one.
  const bool recording = at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  const auto method = recording ? AttentionKernel::Chunked : kernel_options().attention;
  if (method == AttentionKernel::Chunked) return chunked(q, k, v, heads, causal_mask);
  const auto dtype = q.scalar_type();
  const bool fusable = !causal_mask.defined() && q.device().is_cpu() && k.scalar_type() == dtype &&
                       v.scalar_type() == dtype && fused_attention_supported(dtype);
  if (method == AttentionKernel::Fused && fusable) return fused_attention(q, k, v, heads);
  return blocked(q, k, v, heads, causal_mask);
}

}  // namespace diffuse::models
