#include "models/fused_attention.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "models/fused_ops.h"
#include "models/kernel_options.h"
#include "models/simd_avx512.h"
#include "util/error.h"

#ifdef DIFFUSE_X86_KERNELS
DIFFUSE_TARGET_BEGIN(DIFFUSE_AVX512_TARGET)
#include "models/simd_math.h"
DIFFUSE_TARGET_END
#endif

namespace diffuse::models {

#ifdef DIFFUSE_X86_KERNELS
namespace {

using namespace avx512;

// Query rows per work item: a multiple of both tiles' row counts below.
constexpr int64_t kBlockRows = 24;
// Score tile: 6 query rows x 4 vectors of 16 keys = 24 accumulators, each key vector reused 6 times.
constexpr int kScoreRows = 6;
constexpr int kScoreVectors = 4;
constexpr int64_t kKeyChunk = 16 * kScoreVectors;

// What differs between the two precisions. bf16: vdpbf16ps multiplies pairs, so operands are packed
// two values deep and one broadcast carries a pair; fp32: plain FMAs, one value deep.
struct Bf16 {
  using Storage = uint16_t;  // bf16 bits
  using Scalar = uint32_t;   // a pair of them, broadcast to every lane
  using Vector = __m512bh;
  static constexpr int64_t kDepth = 2;
  static const Storage* data(const at::Tensor& t) { return bf16_bits(t); }
  static Storage* data(at::Tensor& t) { return bf16_bits(t); }
  DIFFUSE_KERNEL static Vector load(const Storage* p) { return as_bf16(_mm512_loadu_si512(p)); }
  DIFFUSE_KERNEL static Vector broadcast(Scalar s) { return as_bf16(_mm512_set1_epi32(static_cast<int>(s))); }
  DIFFUSE_KERNEL static __m512 multiply_add(__m512 acc, Vector a, Vector b) { return _mm512_dpbf16_ps(acc, a, b); }
  DIFFUSE_KERNEL static void store(Storage* p, __m512 x, __mmask16 lanes) { store_bf16(p, x, lanes); }
};

struct Fp32 {
  using Storage = float;
  using Scalar = float;
  using Vector = __m512;
  static constexpr int64_t kDepth = 1;
  static const Storage* data(const at::Tensor& t) { return t.data_ptr<float>(); }
  static Storage* data(at::Tensor& t) { return t.data_ptr<float>(); }
  DIFFUSE_KERNEL static Vector load(const Storage* p) { return _mm512_loadu_ps(p); }
  DIFFUSE_KERNEL static Vector broadcast(Scalar s) { return _mm512_set1_ps(s); }
  DIFFUSE_KERNEL static __m512 multiply_add(__m512 acc, Vector a, Vector b) { return _mm512_fmadd_ps(a, b, acc); }
  DIFFUSE_KERNEL static void store(Storage* p, __m512 x, __mmask16 lanes) { _mm512_mask_storeu_ps(p, lanes, x); }
};

// Tensor sizes and the padded extents of the packed operands, for packing depth `depth`.
struct Layout {
  int64_t batch, queries, keys, heads, head_dim, depth;
  int64_t dim_groups;   // head_dim / depth, rounded up
  int64_t dim_vectors;  // head_dim / 16, rounded up: output lanes
  int64_t padded_keys;  // keys rounded up to whole score tiles
  int64_t row_stride() const { return heads * head_dim; }
  int64_t packed_keys_size() const { return padded_keys * dim_groups * depth; }
  int64_t packed_values_size() const { return padded_keys * dim_vectors * 16; }
};

// Keys as [key vector][dim group][16 keys][depth dims]: one 64-byte load is 16 keys' values of a
// dim group.
template <typename T>
void pack_keys(const T* k, const Layout& l, T* out) {
  const int64_t key_vectors = l.padded_keys / 16;
  for (int64_t kv = 0; kv < key_vectors; ++kv)
    for (int64_t j = 0; j < 16; ++j) {
      const int64_t key = kv * 16 + j;
      for (int64_t dim = 0; dim < l.dim_groups * l.depth; ++dim) {
        const T value = key < l.keys && dim < l.head_dim ? k[key * l.row_stride() + dim] : T(0);
        out[((kv * l.dim_groups + dim / l.depth) * 16 + j) * l.depth + dim % l.depth] = value;
      }
    }
}

// Values as [key group][dim vector][16 dims][depth keys]: one load is a key group's values of 16 dims.
template <typename T>
void pack_values(const T* v, const Layout& l, T* out) {
  for (int64_t key = 0; key < l.padded_keys; ++key)
    for (int64_t dim = 0; dim < l.dim_vectors * 16; ++dim) {
      const T value = key < l.keys && dim < l.head_dim ? v[key * l.row_stride() + dim] : T(0);
      out[((key / l.depth * l.dim_vectors + dim / 16) * 16 + dim % 16) * l.depth + key % l.depth] = value;
    }
}

// scores[r][0..64) = q_r · key_j for kScoreRows query rows against kKeyChunk keys, of which the
// first `keys` are real; row_max[r] (16 lanes each) takes the largest real score of each row.
template <typename P>
DIFFUSE_KERNEL void score_tile(const typename P::Scalar* q, int64_t dim_groups, const typename P::Storage* k,
                               int64_t keys, float* scores, int64_t stride, float* row_max) {
  __m512 acc[kScoreRows][kScoreVectors];
#pragma GCC unroll 8
  for (int r = 0; r < kScoreRows; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < kScoreVectors; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int64_t g = 0; g < dim_groups; ++g) {
    typename P::Vector key[kScoreVectors];
#pragma GCC unroll 8
    for (int c = 0; c < kScoreVectors; ++c) key[c] = P::load(k + (c * dim_groups + g) * 16 * P::kDepth);
#pragma GCC unroll 8
    for (int r = 0; r < kScoreRows; ++r) {
      const auto query = P::broadcast(q[r * dim_groups + g]);
#pragma GCC unroll 8
      for (int c = 0; c < kScoreVectors; ++c) acc[r][c] = P::multiply_add(acc[r][c], query, key[c]);
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

// Unnormalised softmax of one score row into probabilities (zero past `keys`, up to the next
// multiple of 16), given the row's largest score; returns 1 / their sum.
template <typename P>
DIFFUSE_KERNEL float softmax_row(const float* scores, int64_t keys, float top, float scale_log2,
                                 typename P::Storage* probabilities) {
  const __m512 scale = _mm512_set1_ps(scale_log2);
  const __m512 shift = _mm512_set1_ps(-top * scale_log2);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t i = 0; i < keys; i += 16) {
    const __mmask16 lanes = first_lanes(keys - i);
    __m512 e = simd::exp2<Avx512>(_mm512_fmadd_ps(_mm512_loadu_ps(scores + i), scale, shift));
    if (lanes != kAllLanes) e = _mm512_maskz_mov_ps(lanes, e);
    sum = _mm512_add_ps(sum, e);
    P::store(probabilities + i, e, kAllLanes);
  }
  return 1.0f / horizontal_sum(sum);
}

// out[r][dims] = probabilities_r · values / sum_r for `Rows` rows and `Vectors` x 16 output dims,
// of which the first `dims` are stored (rows past `rows` are computed, not stored).
template <typename P, int Rows, int Vectors>
DIFFUSE_KERNEL void value_tile(const typename P::Scalar* probabilities, int64_t probability_stride,
                               const typename P::Storage* values, int64_t value_stride, int64_t key_groups,
                               const float* inverse_sums, int64_t rows, typename P::Storage* out, int64_t out_stride,
                               int64_t dims) {
  __m512 acc[Rows][Vectors];
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < Vectors; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int64_t g = 0; g < key_groups; ++g) {
    typename P::Vector value[Vectors];
#pragma GCC unroll 8
    for (int c = 0; c < Vectors; ++c) value[c] = P::load(values + g * value_stride + c * 16 * P::kDepth);
#pragma GCC unroll 8
    for (int r = 0; r < Rows; ++r) {
      const auto p = P::broadcast(probabilities[r * probability_stride + g]);
#pragma GCC unroll 8
      for (int c = 0; c < Vectors; ++c) acc[r][c] = P::multiply_add(acc[r][c], p, value[c]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r) {
    if (r >= rows) break;
    const __m512 inverse_sum = _mm512_set1_ps(inverse_sums[r]);
#pragma GCC unroll 8
    for (int c = 0; c < Vectors; ++c)
      P::store(out + r * out_stride + c * 16, _mm512_mul_ps(acc[r][c], inverse_sum), first_lanes(dims - c * 16));
  }
}

// Up to 4 output vectors per tile, with as many rows as keep 24 accumulators busy (8 or 6, both
// dividing kBlockRows).
constexpr int kMaxValueVectors = 4;
constexpr int kValueTileRows[kMaxValueVectors] = {8, 8, 8, 6};

template <typename P>
struct ValueTiles {
  using Tile = void (*)(const typename P::Scalar*, int64_t, const typename P::Storage*, int64_t, int64_t,
                        const float*, int64_t, typename P::Storage*, int64_t, int64_t);
  static constexpr Tile kTiles[kMaxValueVectors] = {value_tile<P, 8, 1>, value_tile<P, 8, 2>, value_tile<P, 8, 3>,
                                                    value_tile<P, 6, 4>};
};

// Per-thread working memory: one block's queries (as broadcast scalars), scores and probabilities.
template <typename P>
struct Scratch {
  explicit Scratch(const Layout& l)
      : queries(kBlockRows * l.dim_groups),
        scores(kBlockRows * l.padded_keys),
        probabilities(kBlockRows * l.padded_keys),
        row_max(kBlockRows * 16),
        inverse_sums(kBlockRows) {}
  std::vector<typename P::Scalar> queries;
  std::vector<float> scores;
  std::vector<typename P::Storage> probabilities;
  std::vector<float> row_max;  // 16 lanes per row
  std::vector<float> inverse_sums;
};

// Queries as broadcast scalars, zero-padded to whole dim groups and whole blocks.
void pack_queries(const uint16_t* q, const Layout& l, int64_t rows, std::vector<uint32_t>& out) {
  std::fill(out.begin(), out.end(), 0u);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t dim = 0; dim < l.head_dim; ++dim)
      out[r * l.dim_groups + dim / 2] |= uint32_t(q[r * l.row_stride() + dim]) << (16 * (dim % 2));
}

void pack_queries(const float* q, const Layout& l, int64_t rows, std::vector<float>& out) {
  std::fill(out.begin(), out.end(), 0.0f);
  for (int64_t r = 0; r < rows; ++r) std::copy_n(q + r * l.row_stride(), l.head_dim, out.begin() + r * l.dim_groups);
}

// One block of up to kBlockRows query rows of one head; q and out point at its first row.
template <typename P>
DIFFUSE_KERNEL void attend_block(const Layout& l, const typename P::Storage* q, int64_t rows,
                                 const typename P::Storage* packed_keys, const typename P::Storage* packed_values,
                                 float scale_log2, typename P::Storage* out, Scratch<P>& scratch) {
  pack_queries(q, l, rows, scratch.queries);
  std::fill(scratch.row_max.begin(), scratch.row_max.end(), -INFINITY);
  for (int64_t chunk = 0; chunk < l.padded_keys; chunk += kKeyChunk)
    for (int64_t r = 0; r < kBlockRows; r += kScoreRows)
      score_tile<P>(scratch.queries.data() + r * l.dim_groups, l.dim_groups,
                    packed_keys + chunk * l.dim_groups * P::kDepth, l.keys - chunk,
                    scratch.scores.data() + r * l.padded_keys + chunk, l.padded_keys, scratch.row_max.data() + r * 16);

  for (int64_t r = 0; r < rows; ++r) {
    const float top = horizontal_max(_mm512_loadu_ps(scratch.row_max.data() + r * 16));
    scratch.inverse_sums[r] = softmax_row<P>(scratch.scores.data() + r * l.padded_keys, l.keys, top, scale_log2,
                                             scratch.probabilities.data() + r * l.padded_keys);
  }

  const auto* probabilities = reinterpret_cast<const typename P::Scalar*>(scratch.probabilities.data());
  const int64_t group_stride = l.padded_keys / P::kDepth, key_groups = (l.keys + P::kDepth - 1) / P::kDepth;
  for (int64_t vector = 0; vector < l.dim_vectors; vector += kMaxValueVectors) {
    const int64_t vectors = std::min<int64_t>(kMaxValueVectors, l.dim_vectors - vector);
    const int tile_rows = kValueTileRows[vectors - 1];
    for (int64_t r = 0; r < rows; r += tile_rows)
      ValueTiles<P>::kTiles[vectors - 1](probabilities + r * group_stride, group_stride,
                                         packed_values + vector * 16 * P::kDepth, l.dim_vectors * 16 * P::kDepth,
                                         key_groups, scratch.inverse_sums.data() + r, rows - r,
                                         out + r * l.row_stride() + vector * 16, l.row_stride(),
                                         l.head_dim - vector * 16);
  }
}

template <typename P>
at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads) {
  Layout l{};
  l.batch = q.size(0);
  l.queries = q.size(1);
  l.keys = k.size(1);
  l.heads = heads;
  l.head_dim = q.size(2) / heads;
  l.depth = P::kDepth;
  l.dim_groups = (l.head_dim + P::kDepth - 1) / P::kDepth;
  l.dim_vectors = (l.head_dim + 15) / 16;
  l.padded_keys = (l.keys + kKeyChunk - 1) / kKeyChunk * kKeyChunk;

  const int64_t head_count = l.batch * l.heads;
  auto packed = at::empty({head_count, l.packed_keys_size() + l.packed_values_size()}, q.options());
  at::parallel_for(0, head_count, 1, [&](int64_t begin, int64_t end) {
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t offset = bh / l.heads * l.keys * l.row_stride() + bh % l.heads * l.head_dim;
      auto* dest = P::data(packed) + bh * packed.size(1);
      pack_keys(P::data(k) + offset, l, dest);
      pack_values(P::data(v) + offset, l, dest + l.packed_keys_size());
    }
  });

  auto out = at::empty_like(q);
  const float scale_log2 = static_cast<float>(1.0 / std::log(2.0) / std::sqrt(static_cast<double>(l.head_dim)));
  const int64_t blocks = (l.queries + kBlockRows - 1) / kBlockRows;
  at::parallel_for(0, head_count * blocks, 1, [&](int64_t begin, int64_t end) {
    Scratch<P> scratch(l);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t bh = item / blocks, row = item % blocks * kBlockRows;
      const int64_t offset = (bh / l.heads * l.queries + row) * l.row_stride() + bh % l.heads * l.head_dim;
      const auto* keys = P::data(packed) + bh * packed.size(1);
      attend_block<P>(l, P::data(q) + offset, std::min(kBlockRows, l.queries - row), keys,
                      keys + l.packed_keys_size(), scale_log2, P::data(out) + offset, scratch);
    }
  });
  return out;
}

}  // namespace

bool fused_attention_supported(at::ScalarType dtype) {
  const CpuClass cpu = kernel_options().cpu;
  if (dtype == at::kBFloat16) return cpu >= CpuClass::Avx512Bf16;
  return dtype == at::kFloat && cpu >= CpuClass::Avx512;
}

at::Tensor fused_attention(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in, int64_t heads) {
  const auto dtype = q_in.scalar_type();
  for (const auto* t : {&q_in, &k_in, &v_in})
    if ((dtype != at::kBFloat16 && dtype != at::kFloat) || t->scalar_type() != dtype || !t->device().is_cpu() ||
        t->dim() != 3)
      throw Error("fused attention takes 3-d bf16 or fp32 CPU tensors of one dtype, got " +
                  std::string(c10::toString(t->scalar_type())) + " " + t->device().str() + " with " +
                  std::to_string(t->dim()) + " dims");
  if (!fused_attention_supported(dtype))
    throw Error(std::string("fused attention in ") + c10::toString(dtype) + " needs a CPU with AVX-512" +
                (dtype == at::kBFloat16 ? " and AVX512_BF16" : ""));
  if (heads <= 0 || q_in.size(2) % heads != 0 || k_in.sizes() != v_in.sizes() || k_in.size(0) != q_in.size(0) ||
      k_in.size(2) != q_in.size(2))
    throw Error("fused attention: q " + c10::str(q_in.sizes()) + ", k " + c10::str(k_in.sizes()) + ", v " +
                c10::str(v_in.sizes()) + " do not fit " + std::to_string(heads) + " heads");
  RECORD_FUNCTION("diffuse::fused_attention", std::vector<c10::IValue>());  // named in profiles
  const auto q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
  return dtype == at::kBFloat16 ? attend<Bf16>(q, k, v, heads) : attend<Fp32>(q, k, v, heads);
}

#else  // not an x86-64 build

bool fused_attention_supported(at::ScalarType) { return false; }

at::Tensor fused_attention(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t) {
  throw Error("fused attention is built for x86-64 only");
}

#endif

}  // namespace diffuse::models
