#pragma once
// AVX2 and FMA for the fused kernels: the `Avx2` instruction-set struct, with the static interface
// of `Avx512` (simd_avx512.h) on 8 lanes. AVX2 has no masked loads of 16-bit values, no bf16
// conversion and no scalef: partial vectors of bf16 go through a small buffer, rounding to bf16 is
// done on the integer bits (as torch does it), and powers of two are built in the exponent field.
// Every function carries its target; call them only where the CPU class (kernel_options().cpu) is
// Avx2 or above.
#include "models/simd_target.h"

#ifdef DIFFUSE_X86_KERNELS
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#define DIFFUSE_AVX2_KERNEL __attribute__((target(DIFFUSE_AVX2_TARGET)))

namespace diffuse::models {

struct Avx2 {
  using Vector = __m256;
  using Lanes = int;  // how many leading lanes a partial vector holds, 0 to 8
  static constexpr int64_t kLanes = 8;

  DIFFUSE_AVX2_KERNEL static Lanes first_lanes(int64_t count) {
    return count >= kLanes ? int(kLanes) : count <= 0 ? 0 : int(count);
  }
  DIFFUSE_AVX2_KERNEL static __m256i lane_mask(Lanes lanes) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }

  // Loads read unheld lanes as 0; stores leave memory past them untouched.
  DIFFUSE_AVX2_KERNEL static Vector load(const float* p, Lanes lanes) {
    return lanes == kLanes ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, lane_mask(lanes));
  }
  DIFFUSE_AVX2_KERNEL static void store(float* p, Vector x, Lanes lanes) {
    if (lanes == kLanes) {
      _mm256_storeu_ps(p, x);
    } else {
      _mm256_maskstore_ps(p, lane_mask(lanes), x);
    }
  }
  // bf16 is the top half of an fp32.
  DIFFUSE_AVX2_KERNEL static Vector load(const uint16_t* p, Lanes lanes) {
    __m128i bits;
    if (lanes == kLanes) {
      bits = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    } else {
      alignas(16) uint16_t partial[kLanes] = {};
      std::memcpy(partial, p, sizeof(uint16_t) * lanes);
      bits = _mm_load_si128(reinterpret_cast<const __m128i*>(partial));
    }
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
  }
  // Rounds to nearest even exactly as torch's float-to-bf16 conversion: add 0x7fff plus the lowest
  // kept bit, keep the top half; NaN becomes the quiet NaN 0x7fc0 (the addition could carry a NaN's
  // payload into infinity).
  DIFFUSE_AVX2_KERNEL static void store(uint16_t* p, Vector x, Lanes lanes) {
    const __m256i bits = _mm256_castps_si256(x);
    const __m256i lowest_kept = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    const __m256i rounded =
        _mm256_srli_epi32(_mm256_add_epi32(bits, _mm256_add_epi32(lowest_kept, _mm256_set1_epi32(0x7fff))), 16);
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    const __m256i halves = _mm256_blendv_epi8(rounded, _mm256_set1_epi32(0x7fc0), nan);
    // Every value fits 16 bits, so the saturating pack only narrows.
    const __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(halves), _mm256_extracti128_si256(halves, 1));
    if (lanes == kLanes) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p), packed);
    } else {
      alignas(16) uint16_t partial[kLanes];
      _mm_store_si128(reinterpret_cast<__m128i*>(partial), packed);
      std::memcpy(p, partial, sizeof(uint16_t) * lanes);
    }
  }
  DIFFUSE_AVX2_KERNEL static Vector zero_outside(Lanes lanes, Vector x) {
    return lanes == kLanes ? x : _mm256_and_ps(x, _mm256_castsi256_ps(lane_mask(lanes)));
  }

  DIFFUSE_AVX2_KERNEL static Vector broadcast(float x) { return _mm256_set1_ps(x); }
  DIFFUSE_AVX2_KERNEL static Vector zero() { return _mm256_setzero_ps(); }
  DIFFUSE_AVX2_KERNEL static Vector add(Vector a, Vector b) { return _mm256_add_ps(a, b); }
  DIFFUSE_AVX2_KERNEL static Vector sub(Vector a, Vector b) { return _mm256_sub_ps(a, b); }
  DIFFUSE_AVX2_KERNEL static Vector mul(Vector a, Vector b) { return _mm256_mul_ps(a, b); }
  DIFFUSE_AVX2_KERNEL static Vector div(Vector a, Vector b) { return _mm256_div_ps(a, b); }
  // a * b + c and c - a * b, rounded once.
  DIFFUSE_AVX2_KERNEL static Vector fma(Vector a, Vector b, Vector c) { return _mm256_fmadd_ps(a, b, c); }
  DIFFUSE_AVX2_KERNEL static Vector fnma(Vector a, Vector b, Vector c) { return _mm256_fnmadd_ps(a, b, c); }
  // b where either is NaN, as maxps does.
  DIFFUSE_AVX2_KERNEL static Vector max(Vector a, Vector b) { return _mm256_max_ps(a, b); }
  DIFFUSE_AVX2_KERNEL static Vector min(Vector a, Vector b) { return _mm256_min_ps(a, b); }
  DIFFUSE_AVX2_KERNEL static Vector round(Vector x) {
    return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  // x * 2^whole for whole numbers in [-126, 128], as scalef computes it: in two halves, since 2^128
  // itself is not a float, each half's power built in the exponent field; one rounding at most
  // (where the result is denormal).
  DIFFUSE_AVX2_KERNEL static Vector scale_by_power_of_two(Vector x, Vector whole) {
    const __m256i n = _mm256_cvtps_epi32(whole);
    const __m256i first = _mm256_srai_epi32(n, 1), second = _mm256_sub_epi32(n, first);
    return _mm256_mul_ps(_mm256_mul_ps(x, power_of_two(first)), power_of_two(second));
  }
  // 2^e for whole e in [-126, 127], written straight into the exponent field.
  DIFFUSE_AVX2_KERNEL static Vector power_of_two(__m256i e) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(127)), 23));
  }
  DIFFUSE_AVX2_KERNEL static Vector abs(Vector x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }
  // A non-negative `magnitude` with the sign bit of `sign`.
  DIFFUSE_AVX2_KERNEL static Vector with_sign_of(Vector magnitude, Vector sign) {
    return _mm256_or_ps(magnitude, _mm256_and_ps(sign, _mm256_set1_ps(-0.0f)));
  }
  DIFFUSE_AVX2_KERNEL static float horizontal_sum(Vector x) {
    alignas(32) float lanes[kLanes];
    _mm256_store_ps(lanes, x);
    float sum = 0;
    for (float lane : lanes) sum += lane;
    return sum;
  }
  DIFFUSE_AVX2_KERNEL static float horizontal_max(Vector x) {
    alignas(32) float lanes[kLanes];
    _mm256_store_ps(lanes, x);
    float top = lanes[0];
    for (float lane : lanes) top = lane > top ? lane : top;
    return top;
  }
};

}  // namespace diffuse::models
#endif
