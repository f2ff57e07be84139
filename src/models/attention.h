#pragma once
#include <ATen/ATen.h>

namespace diffuse::models {

// softmax(q kᵀ / sqrt(d)) v over `heads` heads. q: [B, N, heads*d], k and v: [B, M, heads*d].
// `causal_mask` (optional, [N, M], added to the scores) is for the text encoder.
// Queries are processed in chunks so the score matrix never holds all N×M entries at once.
at::Tensor scaled_dot_product_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                                        const at::Tensor& causal_mask = at::Tensor());

}  // namespace diffuse::models
