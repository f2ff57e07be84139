#pragma once
// The inner loops of the fused GroupNorm(+SiLU), LayerNorm and GEGLU (models/fused_ops.h) on raw
// storage, one set per instruction set, each compiled from the one definition in
// fused_norm_kernels_impl.h. fused_ops.cpp splits tensors into rows and spans, picks a set by the
// CPU class and calls these from its threads. T is float, or uint16_t for bf16 bits; arithmetic is
// fp32 throughout and bf16 results are rounded once, to nearest even.
#include <cstdint>

#include "models/simd_target.h"

namespace diffuse::models {

template <typename T>
struct NormKernels {
  // One group of GroupNorm: `channels` planes of `plane` values each, normalised together, then
  // scaled per channel by gamma and shifted by beta; optionally SiLU on the result.
  void (*group_norm_span)(const T* x, T* y, int64_t channels, int64_t plane, const float* gamma, const float* beta,
                          float eps, bool then_silu);
  // One row of LayerNorm: n values, gamma and beta of n each.
  void (*layer_norm_row)(const T* x, T* y, int64_t n, const float* gamma, const float* beta, float eps);
  // One row of GEGLU: y[i] = x[i] * gelu(x[half + i]) for i < half.
  void (*geglu_row)(const T* x, T* y, int64_t half);
};

#ifdef DIFFUSE_X86_KERNELS
// For CpuClass::Avx2 and above.
template <typename T>
const NormKernels<T>& avx2_norm_kernels();
// For CpuClass::Avx512 and above in fp32; bf16 storage needs CpuClass::Avx512Bf16 (vcvtneps2bf16).
template <typename T>
const NormKernels<T>& avx512_norm_kernels();
#endif

}  // namespace diffuse::models
