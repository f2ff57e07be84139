#pragma once
// Multi-head attention in one pass over blocks of queries, for bf16 and fp32 inference on CPUs with
// AVX-512 (bf16 also needs AVX512_BF16). A block of 24 query rows computes its scores against every
// key into a buffer the size of 24 score rows (fp32, cache-resident), takes an exact softmax of each
// row and multiplies by the values right away: the (queries x keys) score matrix never exists, so
// its memory grows with the number of tokens, not with its square. bf16 products run on vdpbf16ps,
// fp32 ones on FMAs, both accumulating in fp32.
#include <ATen/ATen.h>

namespace diffuse::models {

// Whether this CPU can run fused_attention in `dtype` (checked once at run time).
bool fused_attention_supported(at::ScalarType dtype);

// softmax(q kᵀ / sqrt(d)) v over `heads` heads. q: [B, N, heads*d], k and v: [B, M, heads*d], all of
// one dtype (bf16 or fp32) on the CPU; returns [B, N, heads*d] of that dtype. Callers check
// fused_attention_supported() first.
at::Tensor fused_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads);

}  // namespace diffuse::models
