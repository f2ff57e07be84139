#pragma once
// Multi-head attention in one pass over blocks of queries, for bf16 inference on CPUs with
// AVX512_BF16. A block of 24 query rows computes its scores against every key into a buffer the size
// of 24 score rows (fp32, cache-resident), takes an exact softmax of each row and multiplies by the
// values right away: the (queries x keys) score matrix never exists, so its memory grows with the
// number of tokens, not with its square. Products run on vdpbf16ps with fp32 accumulation.
#include <ATen/ATen.h>

namespace diffuse::models {

// Whether this CPU can run fused_attention (AVX512_BF16, checked once at run time).
bool fused_attention_supported();

// softmax(q kᵀ / sqrt(d)) v over `heads` heads. q: [B, N, heads*d], k and v: [B, M, heads*d], all bf16
// on the CPU; returns [B, N, heads*d] bf16. Callers check fused_attention_supported() first.
at::Tensor fused_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads);

}  // namespace diffuse::models
