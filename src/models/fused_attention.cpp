#include "models/fused_attention.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "models/avx512_math.h"
#include "util/error.h"

namespace diffuse::models {

#ifdef DIFFUSE_AVX512_KERNELS
namespace {

using namespace avx512;

// Query rows per work item: a multiple of both tiles' row counts below.
constexpr int64_t kBlockRows = 24;
// Score tile: 6 query rows x 4 vectors of 16 keys = 24 accumulators, each key vector reused 6 times.
constexpr int kScoreRows = 6;
constexpr int kScoreVectors = 4;
constexpr int64_t kKeyChunk = 16 * kScoreVectors;

// Tensor sizes and the padded extents of the packed operands.
struct Layout {
  int64_t batch, queries, keys, heads, head_dim;
  int64_t dim_pairs;    // head_dim / 2, rounded up: vdpbf16ps multiplies pairs
  int64_t dim_vectors;  // head_dim / 16, rounded up: output lanes
  int64_t padded_keys;  // keys rounded up to whole score tiles
  int64_t row_stride() const { return heads * head_dim; }
  int64_t packed_keys_size() const { return padded_keys * dim_pairs * 2; }
  int64_t packed_values_size() const { return padded_keys * dim_vectors * 16; }
};

// Keys as [key vector][dim pair][16 keys][2 dims]: one 64-byte load is 16 keys' values of a dim pair.
void pack_keys(const uint16_t* k, const Layout& l, uint16_t* out) {
  const int64_t key_vectors = l.padded_keys / 16;
  for (int64_t kv = 0; kv < key_vectors; ++kv)
    for (int64_t j = 0; j < 16; ++j) {
      const int64_t key = kv * 16 + j;
      for (int64_t dim = 0; dim < l.dim_pairs * 2; ++dim) {
        const uint16_t value = key < l.keys && dim < l.head_dim ? k[key * l.row_stride() + dim] : 0;
        out[((kv * l.dim_pairs + dim / 2) * 16 + j) * 2 + dim % 2] = value;
      }
    }
}

// Values as [key pair][dim vector][16 dims][2 keys]: one load is a key pair's values of 16 dims.
void pack_values(const uint16_t* v, const Layout& l, uint16_t* out) {
  for (int64_t key = 0; key < l.padded_keys; ++key)
    for (int64_t dim = 0; dim < l.dim_vectors * 16; ++dim) {
      const uint16_t value = key < l.keys && dim < l.head_dim ? v[key * l.row_stride() + dim] : 0;
      out[((key / 2 * l.dim_vectors + dim / 16) * 16 + dim % 16) * 2 + key % 2] = value;
    }
}

// scores[r][0..64) = q_r · key_j for kScoreRows query rows against kKeyChunk keys, of which the
// first `keys` are real; row_max[r] (16 lanes each) takes the largest real score of each row.
DIFFUSE_KERNEL void score_tile(const uint32_t* q, int64_t dim_pairs, const uint16_t* k, int64_t keys, float* scores,
                               int64_t stride, float* row_max) {
  __m512 acc[kScoreRows][kScoreVectors];
#pragma GCC unroll 8
  for (int r = 0; r < kScoreRows; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < kScoreVectors; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int64_t p = 0; p < dim_pairs; ++p) {
    __m512bh key[kScoreVectors];
#pragma GCC unroll 8
    for (int c = 0; c < kScoreVectors; ++c) key[c] = as_bf16(_mm512_loadu_si512(k + (c * dim_pairs + p) * 32));
#pragma GCC unroll 8
    for (int r = 0; r < kScoreRows; ++r) {
      const __m512bh query = as_bf16(_mm512_set1_epi32(static_cast<int>(q[r * dim_pairs + p])));
#pragma GCC unroll 8
      for (int c = 0; c < kScoreVectors; ++c) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], query, key[c]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < kScoreRows; ++r) {
    __m512 top = _mm512_loadu_ps(row_max + r * 16);
#pragma GCC unroll 8
    for (int c = 0; c < kScoreVectors; ++c) {
      _mm512_storeu_ps(scores + r * stride + c * 16, acc[r][c]);
      top = _mm512_mask_max_ps(top, first_lanes(keys - c * 16), top, acc[r][c]);
    }
    _mm512_storeu_ps(row_max + r * 16, top);
  }
}

// Unnormalised softmax of one score row into bf16 probabilities (zero past `keys`, up to the next
// multiple of 16), given the row's largest score; returns 1 / their sum.
DIFFUSE_KERNEL float softmax_row(const float* scores, int64_t keys, float top, float scale_log2,
                                 uint16_t* probabilities) {
  const __m512 scale = _mm512_set1_ps(scale_log2);
  const __m512 shift = _mm512_set1_ps(-top * scale_log2);
  __m512 sum = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= keys; i += 16) {
    const __m512 e = exp2_ps(_mm512_fmadd_ps(_mm512_loadu_ps(scores + i), scale, shift));
    sum = _mm512_add_ps(sum, e);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(probabilities + i), (__m256i)_mm512_cvtneps_pbh(e));
  }
  if (i < keys) {
    const __m512 x = _mm512_fmadd_ps(_mm512_loadu_ps(scores + i), scale, shift);
    const __m512 e = _mm512_maskz_mov_ps(first_lanes(keys - i), exp2_ps(x));
    sum = _mm512_add_ps(sum, e);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(probabilities + i), (__m256i)_mm512_cvtneps_pbh(e));
  }
  return 1.0f / horizontal_sum(sum);
}

// out[r][dims] = probabilities_r · values / sum_r for `Rows` rows and `Vectors` x 16 output dims,
// of which the first `dims` are stored (rows past `rows` are computed, not stored).
template <int Rows, int Vectors>
DIFFUSE_KERNEL void value_tile(const uint32_t* probabilities, int64_t probability_stride, const uint16_t* values,
                       int64_t value_stride, int64_t key_pairs, const float* inverse_sums, int64_t rows,
                       uint16_t* out, int64_t out_stride, int64_t dims) {
  __m512 acc[Rows][Vectors];
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < Vectors; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int64_t kp = 0; kp < key_pairs; ++kp) {
    __m512bh value[Vectors];
#pragma GCC unroll 8
    for (int c = 0; c < Vectors; ++c) value[c] = as_bf16(_mm512_loadu_si512(values + kp * value_stride + c * 32));
#pragma GCC unroll 8
    for (int r = 0; r < Rows; ++r) {
      const __m512bh p = as_bf16(_mm512_set1_epi32(static_cast<int>(probabilities[r * probability_stride + kp])));
#pragma GCC unroll 8
      for (int c = 0; c < Vectors; ++c) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], p, value[c]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r) {
    if (r >= rows) break;
    const __m512 inverse_sum = _mm512_set1_ps(inverse_sums[r]);
#pragma GCC unroll 8
    for (int c = 0; c < Vectors; ++c) {
      const int64_t lanes = std::clamp<int64_t>(dims - c * 16, 0, 16);
      const __m256bh result = _mm512_cvtneps_pbh(_mm512_mul_ps(acc[r][c], inverse_sum));
      _mm256_mask_storeu_epi16(out + r * out_stride + c * 16, __mmask16((1u << lanes) - 1), (__m256i)result);
    }
  }
}

// Up to 4 output vectors per tile, with as many rows as keep 24 accumulators busy (8 or 6, both
// dividing kBlockRows).
using ValueTile = void (*)(const uint32_t*, int64_t, const uint16_t*, int64_t, int64_t, const float*, int64_t,
                           uint16_t*, int64_t, int64_t);
constexpr int kMaxValueVectors = 4;
constexpr ValueTile kValueTiles[kMaxValueVectors] = {value_tile<8, 1>, value_tile<8, 2>, value_tile<8, 3>,
                                                     value_tile<6, 4>};
constexpr int kValueTileRows[kMaxValueVectors] = {8, 8, 8, 6};

// Per-thread working memory: one block's queries as pairs, scores and probabilities.
struct Scratch {
  explicit Scratch(const Layout& l)
      : queries(kBlockRows * l.dim_pairs),
        scores(kBlockRows * l.padded_keys),
        probabilities(kBlockRows * l.padded_keys),
        row_max(kBlockRows * 16),
        inverse_sums(kBlockRows) {}
  std::vector<uint32_t> queries;
  std::vector<float> scores;
  std::vector<uint16_t> probabilities;
  std::vector<float> row_max;  // 16 lanes per row
  std::vector<float> inverse_sums;
};

// One block of up to kBlockRows query rows of one head; q and out point at its first row.
DIFFUSE_KERNEL void attend_block(const Layout& l, const uint16_t* q, int64_t rows, const uint16_t* packed_keys,
                         const uint16_t* packed_values, float scale_log2, uint16_t* out, Scratch& scratch) {
  // Queries as 32-bit pairs, zero-padded to whole pairs and whole blocks.
  std::fill(scratch.queries.begin(), scratch.queries.end(), 0u);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t dim = 0; dim < l.head_dim; ++dim)
      scratch.queries[r * l.dim_pairs + dim / 2] |= uint32_t(q[r * l.row_stride() + dim]) << (16 * (dim % 2));

  std::fill(scratch.row_max.begin(), scratch.row_max.end(), -INFINITY);
  for (int64_t chunk = 0; chunk < l.padded_keys; chunk += kKeyChunk)
    for (int64_t r = 0; r < kBlockRows; r += kScoreRows)
      score_tile(scratch.queries.data() + r * l.dim_pairs, l.dim_pairs, packed_keys + chunk * l.dim_pairs * 2,
                 l.keys - chunk, scratch.scores.data() + r * l.padded_keys + chunk, l.padded_keys,
                 scratch.row_max.data() + r * 16);

  for (int64_t r = 0; r < rows; ++r) {
    const float top = horizontal_max(_mm512_loadu_ps(scratch.row_max.data() + r * 16));
    scratch.inverse_sums[r] = softmax_row(scratch.scores.data() + r * l.padded_keys, l.keys, top, scale_log2,
                                          scratch.probabilities.data() + r * l.padded_keys);
  }

  const auto* probabilities = reinterpret_cast<const uint32_t*>(scratch.probabilities.data());
  const int64_t pair_stride = l.padded_keys / 2, key_pairs = (l.keys + 1) / 2;
  for (int64_t vector = 0; vector < l.dim_vectors; vector += kMaxValueVectors) {
    const int64_t vectors = std::min<int64_t>(kMaxValueVectors, l.dim_vectors - vector);
    const int tile_rows = kValueTileRows[vectors - 1];
    for (int64_t r = 0; r < rows; r += tile_rows)
      kValueTiles[vectors - 1](probabilities + r * pair_stride, pair_stride, packed_values + vector * 32,
                               l.dim_vectors * 32, key_pairs, scratch.inverse_sums.data() + r, rows - r,
                               out + r * l.row_stride() + vector * 16, l.row_stride(), l.head_dim - vector * 16);
  }
}

const uint16_t* bits(const at::Tensor& t) { return reinterpret_cast<const uint16_t*>(t.data_ptr<at::BFloat16>()); }
uint16_t* mutable_bits(at::Tensor& t) { return reinterpret_cast<uint16_t*>(t.data_ptr<at::BFloat16>()); }

}  // namespace

bool fused_attention_supported() { return avx512_bf16_supported(); }

at::Tensor fused_attention(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in, int64_t heads) {
  for (const auto* t : {&q_in, &k_in, &v_in})
    if (t->scalar_type() != at::kBFloat16 || !t->device().is_cpu() || t->dim() != 3)
      throw Error("fused attention takes 3-d bf16 CPU tensors, got " + std::string(c10::toString(t->scalar_type())) +
                  " " + t->device().str() + " with " + std::to_string(t->dim()) + " dims");
  if (!fused_attention_supported()) throw Error("fused attention needs a CPU with AVX512_BF16");
  RECORD_FUNCTION("diffuse::fused_attention", std::vector<c10::IValue>());  // named in profiles
  const auto q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
  Layout l{};
  l.batch = q.size(0);
  l.queries = q.size(1);
  l.keys = k.size(1);
  l.heads = heads;
  l.head_dim = q.size(2) / heads;
  l.dim_pairs = (l.head_dim + 1) / 2;
  l.dim_vectors = (l.head_dim + 15) / 16;
  l.padded_keys = (l.keys + kKeyChunk - 1) / kKeyChunk * kKeyChunk;
  if (q.size(2) % heads != 0 || k.sizes() != v.sizes() || k.size(0) != l.batch || k.size(2) != q.size(2))
    throw Error("fused attention: q " + c10::str(q.sizes()) + ", k " + c10::str(k.sizes()) + ", v " +
                c10::str(v.sizes()) + " do not fit " + std::to_string(heads) + " heads");

  const int64_t head_count = l.batch * l.heads;
  auto packed = at::empty({head_count, l.packed_keys_size() + l.packed_values_size()}, q.options());
  at::parallel_for(0, head_count, 1, [&](int64_t begin, int64_t end) {
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t offset = bh / l.heads * l.keys * l.row_stride() + bh % l.heads * l.head_dim;
      uint16_t* dest = mutable_bits(packed) + bh * packed.size(1);
      pack_keys(bits(k) + offset, l, dest);
      pack_values(bits(v) + offset, l, dest + l.packed_keys_size());
    }
  });

  auto out = at::empty_like(q);
  const float scale_log2 = static_cast<float>(1.0 / std::log(2.0) / std::sqrt(static_cast<double>(l.head_dim)));
  const int64_t blocks = (l.queries + kBlockRows - 1) / kBlockRows;
  at::parallel_for(0, head_count * blocks, 1, [&](int64_t begin, int64_t end) {
    Scratch scratch(l);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t bh = item / blocks, row = item % blocks * kBlockRows;
      const int64_t offset = (bh / l.heads * l.queries + row) * l.row_stride() + bh % l.heads * l.head_dim;
      const uint16_t* keys = bits(packed) + bh * packed.size(1);
      attend_block(l, bits(q) + offset, std::min(kBlockRows, l.queries - row), keys, keys + l.packed_keys_size(),
                   scale_log2, mutable_bits(out) + offset, scratch);
    }
  });
  return out;
}

#else  // no x86-64 AVX-512 kernel in this build

bool fused_attention_supported() { return false; }

at::Tensor fused_attention(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t) {
  throw Error("fused attention is built for x86-64 only");
}

#endif

}  // namespace diffuse::models
