#pragma once
// AVX-512 helpers shared by the fused kernels. Only for .cpp files that check
// avx512_bf16_supported() before calling a DIFFUSE_KERNEL function: everything else in the program
// still runs on CPUs without AVX-512. Kernels that use no bf16 instruction may run where
// avx512_supported() alone holds.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <ATen/ATen.h>
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#define DIFFUSE_AVX512_KERNELS 1
#define DIFFUSE_KERNEL __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

namespace diffuse::models::avx512 {

inline bool avx512_supported() {
  static const bool supported = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return supported;
}

inline bool avx512_bf16_supported() {
  static const bool supported = avx512_supported() && __builtin_cpu_supports("avx512bf16");
  return supported;
}

// GCC 12's unmasked forms of several intrinsics (max, roundscale, scalef, widening, shifts) warn
// (-Wmaybe-uninitialized) about their own placeholder operand; the all-lanes masked forms are the
// same instructions.
constexpr __mmask16 kAllLanes = 0xffff;

// The first `count` lanes (all 16 when count >= 16).
DIFFUSE_KERNEL inline __mmask16 first_lanes(int64_t count) {
  return count >= 16 ? kAllLanes : __mmask16((1u << std::max<int64_t>(count, 0)) - 1);
}

// A bf16 tensor's storage as raw 16-bit values, as the kernels address it.
inline const uint16_t* bf16_bits(const at::Tensor& t) {
  return reinterpret_cast<const uint16_t*>(t.data_ptr<at::BFloat16>());
}
inline uint16_t* bf16_bits(at::Tensor& t) { return reinterpret_cast<uint16_t*>(t.data_ptr<at::BFloat16>()); }

DIFFUSE_KERNEL inline __m512bh as_bf16(__m512i bits) { return (__m512bh)bits; }

// 16 bf16 values (masked lanes read as 0) widened to fp32: bf16 is the top half of an fp32.
DIFFUSE_KERNEL inline __m512 load_bf16(const uint16_t* p, __mmask16 lanes = kAllLanes) {
  const __m256i bits = _mm256_maskz_loadu_epi16(lanes, p);
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAllLanes, _mm512_maskz_cvtepu16_epi32(kAllLanes, bits), 16));
}

// Rounds to nearest even, as torch's float-to-bf16 conversion does.
DIFFUSE_KERNEL inline void store_bf16(uint16_t* p, __m512 x, __mmask16 lanes = kAllLanes) {
  _mm256_mask_storeu_epi16(p, lanes, (__m256i)_mm512_cvtneps_pbh(x));
}

DIFFUSE_KERNEL inline float horizontal_max(__m512 x) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, x);
  return *std::max_element(lanes, lanes + 16);
}

DIFFUSE_KERNEL inline float horizontal_sum(__m512 x) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, x);
  float sum = 0;
  for (float lane : lanes) sum += lane;
  return sum;
}

// 2^x: exponent by scalef, fraction by a degree-6 Taylor polynomial (relative error below 2e-7 on
// [-0.5, 0.5], far under bf16's 4e-3). Underflows to 0 below -126; overflows to infinity.
DIFFUSE_KERNEL inline __m512 exp2_ps(__m512 x) {
  x = _mm512_maskz_max_ps(kAllLanes, x, _mm512_set1_ps(-126.0f));
  const __m512 whole = _mm512_maskz_roundscale_ps(kAllLanes, x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(x, whole);
  __m512 p = _mm512_set1_ps(1.5403530393381608e-4f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291076284772e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504108664821580e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650695910071e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718055994531e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_maskz_scalef_ps(kAllLanes, p, whole);
}

DIFFUSE_KERNEL inline __m512 exp_ps(__m512 x) { return exp2_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.4426950408889634f))); }

// x * sigmoid(x) = x / (1 + e^-x).
DIFFUSE_KERNEL inline __m512 silu_ps(__m512 x) {
  return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

// erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7).
DIFFUSE_KERNEL inline __m512 erf_ps(__m512 x) {
  const __m512 z = _mm512_abs_ps(x);
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(z, _mm512_set1_ps(0.3275911f), one));
  __m512 p = _mm512_set1_ps(1.061405429f);
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
  p = _mm512_mul_ps(p, t);
  const __m512 magnitude = _mm512_fnmadd_ps(p, exp_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), z), z)),
                                            _mm512_set1_ps(1.0f));
  // Copy x's sign bit onto the magnitude.
  const __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(int(0x80000000u)));
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(magnitude), sign));
}

// The exact GELU, x/2 (1 + erf(x / sqrt 2)), as torch's default.
DIFFUSE_KERNEL inline __m512 gelu_ps(__m512 x) {
  const __m512 e = erf_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f)));
  return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), _mm512_add_ps(e, _mm512_set1_ps(1.0f)));
}

}  // namespace diffuse::models::avx512
#endif
