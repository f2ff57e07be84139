#pragma once
// AVX-512 for the fused kernels: the helpers the attention kernel uses directly, and the `Avx512`
// instruction-set struct the kernels written once for every set take (the same static interface as
// `Avx2` in simd_avx2.h). Every function carries its target, so these may be called from any
// DIFFUSE_KERNEL function or DIFFUSE_TARGET_BEGIN(DIFFUSE_AVX512_TARGET) region, and only after the
// CPU class (kernel_options().cpu) says so: everything else in the program still runs on CPUs
// without AVX-512.
#include "models/simd_target.h"

#ifdef DIFFUSE_X86_KERNELS
#include <immintrin.h>

#include <cstdint>

#define DIFFUSE_KERNEL __attribute__((target(DIFFUSE_AVX512_TARGET)))

namespace diffuse::models {
namespace avx512 {

// GCC 12's unmasked forms of several intrinsics (max, roundscale, scalef, widening, shifts) warn
// (-Wmaybe-uninitialized) about their own placeholder operand; the all-lanes masked forms are the
// same instructions.
constexpr __mmask16 kAllLanes = 0xffff;

// The first `count` lanes (all 16 when count >= 16).
DIFFUSE_KERNEL inline __mmask16 first_lanes(int64_t count) {
  return count >= 16 ? kAllLanes : count <= 0 ? __mmask16(0) : __mmask16((1u << count) - 1);
}

DIFFUSE_KERNEL inline __m512bh as_bf16(__m512i bits) { return (__m512bh)bits; }

// 16 bf16 values (masked lanes read as 0) widened to fp32: bf16 is the top half of an fp32.
DIFFUSE_KERNEL inline __m512 load_bf16(const uint16_t* p, __mmask16 lanes = kAllLanes) {
  const __m256i bits = _mm256_maskz_loadu_epi16(lanes, p);
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAllLanes, _mm512_maskz_cvtepu16_epi32(kAllLanes, bits), 16));
}

// Rounds to nearest even, as torch's float-to-bf16 conversion does (vcvtneps2bf16 flushes
// denormals to zero, which torch does not: no activation is that small).
DIFFUSE_KERNEL inline void store_bf16(uint16_t* p, __m512 x, __mmask16 lanes = kAllLanes) {
  _mm256_mask_storeu_epi16(p, lanes, (__m256i)_mm512_cvtneps_pbh(x));
}

DIFFUSE_KERNEL inline float horizontal_max(__m512 x) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, x);
  float top = lanes[0];
  for (float lane : lanes) top = lane > top ? lane : top;
  return top;
}

DIFFUSE_KERNEL inline float horizontal_sum(__m512 x) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, x);
  float sum = 0;
  for (float lane : lanes) sum += lane;
  return sum;
}

}  // namespace avx512

struct Avx512 {
  using Vector = __m512;
  using Lanes = __mmask16;  // which lanes a partial vector holds
  static constexpr int64_t kLanes = 16;

  DIFFUSE_KERNEL static Lanes first_lanes(int64_t count) { return avx512::first_lanes(count); }
  // Loads read unheld lanes as 0; stores leave memory past them untouched.
  DIFFUSE_KERNEL static Vector load(const float* p, Lanes lanes) { return _mm512_maskz_loadu_ps(lanes, p); }
  DIFFUSE_KERNEL static Vector load(const uint16_t* p, Lanes lanes) { return avx512::load_bf16(p, lanes); }
  DIFFUSE_KERNEL static void store(float* p, Vector x, Lanes lanes) { _mm512_mask_storeu_ps(p, lanes, x); }
  DIFFUSE_KERNEL static void store(uint16_t* p, Vector x, Lanes lanes) { avx512::store_bf16(p, x, lanes); }
  DIFFUSE_KERNEL static Vector zero_outside(Lanes lanes, Vector x) { return _mm512_maskz_mov_ps(lanes, x); }

  DIFFUSE_KERNEL static Vector broadcast(float x) { return _mm512_set1_ps(x); }
  DIFFUSE_KERNEL static Vector zero() { return _mm512_setzero_ps(); }
  DIFFUSE_KERNEL static Vector add(Vector a, Vector b) { return _mm512_add_ps(a, b); }
  DIFFUSE_KERNEL static Vector sub(Vector a, Vector b) { return _mm512_sub_ps(a, b); }
  DIFFUSE_KERNEL static Vector mul(Vector a, Vector b) { return _mm512_mul_ps(a, b); }
  DIFFUSE_KERNEL static Vector div(Vector a, Vector b) { return _mm512_div_ps(a, b); }
  // a * b + c and c - a * b, rounded once.
  DIFFUSE_KERNEL static Vector fma(Vector a, Vector b, Vector c) { return _mm512_fmadd_ps(a, b, c); }
  DIFFUSE_KERNEL static Vector fnma(Vector a, Vector b, Vector c) { return _mm512_fnmadd_ps(a, b, c); }
  // b where either is NaN, as maxps does.
  DIFFUSE_KERNEL static Vector max(Vector a, Vector b) { return _mm512_maskz_max_ps(avx512::kAllLanes, a, b); }
  DIFFUSE_KERNEL static Vector min(Vector a, Vector b) { return _mm512_maskz_min_ps(avx512::kAllLanes, a, b); }
  DIFFUSE_KERNEL static Vector round(Vector x) {
    return _mm512_maskz_roundscale_ps(avx512::kAllLanes, x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  // x * 2^whole for whole numbers in [-126, 128].
  DIFFUSE_KERNEL static Vector scale_by_power_of_two(Vector x, Vector whole) {
    return _mm512_maskz_scalef_ps(avx512::kAllLanes, x, whole);
  }
  DIFFUSE_KERNEL static Vector abs(Vector x) { return _mm512_abs_ps(x); }
  // A non-negative `magnitude` with the sign bit of `sign`.
  DIFFUSE_KERNEL static Vector with_sign_of(Vector magnitude, Vector sign) {
    const __m512i sign_bit = _mm512_and_si512(_mm512_castps_si512(sign), _mm512_set1_epi32(int(0x80000000u)));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(magnitude), sign_bit));
  }
  DIFFUSE_KERNEL static float horizontal_sum(Vector x) { return avx512::horizontal_sum(x); }
  DIFFUSE_KERNEL static float horizontal_max(Vector x) { return avx512::horizontal_max(x); }
};

}  // namespace diffuse::models
#endif
