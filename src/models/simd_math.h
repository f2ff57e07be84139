#pragma once
// The transcendental functions the fused kernels need, written once for every instruction-set
// struct S (simd_avx2.h, simd_avx512.h) from its primitives, so that every set computes the same
// polynomials. Include only inside a DIFFUSE_TARGET_BEGIN region (simd_target.h) for the sets the
// file instantiates these with, after the standard headers: these templates take that region's
// target. Includes nothing itself for that reason.

namespace diffuse::models::simd {

// 2^x: exponent by scaling, fraction by a degree-6 Taylor polynomial (relative error below 2e-7 on
// [-0.5, 0.5], far under bf16's 4e-3). Clamped to [-126, 128]: 2^-126 below (effectively 0 for
// the kernels), infinity from 128 up.
template <typename S>
inline typename S::Vector exp2(typename S::Vector x) {
  x = S::min(S::max(x, S::broadcast(-126.0f)), S::broadcast(128.0f));
  const auto whole = S::round(x);
  const auto f = S::sub(x, whole);
  auto p = S::broadcast(1.5403530393381608e-4f);
  p = S::fma(p, f, S::broadcast(1.3333558146428443e-3f));
  p = S::fma(p, f, S::broadcast(9.6181291076284772e-3f));
  p = S::fma(p, f, S::broadcast(5.5504108664821580e-2f));
  p = S::fma(p, f, S::broadcast(2.4022650695910071e-1f));
  p = S::fma(p, f, S::broadcast(6.9314718055994531e-1f));
  p = S::fma(p, f, S::broadcast(1.0f));
  return S::scale_by_power_of_two(p, whole);
}

template <typename S>
inline typename S::Vector exp(typename S::Vector x) {
  return exp2<S>(S::mul(x, S::broadcast(1.4426950408889634f)));
}

// x * sigmoid(x) = x / (1 + e^-x).
template <typename S>
inline typename S::Vector silu(typename S::Vector x) {
  return S::div(x, S::add(S::broadcast(1.0f), exp<S>(S::sub(S::zero(), x))));
}

// erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7).
template <typename S>
inline typename S::Vector erf(typename S::Vector x) {
  const auto z = S::abs(x);
  const auto one = S::broadcast(1.0f);
  const auto t = S::div(one, S::fma(z, S::broadcast(0.3275911f), one));
  auto p = S::broadcast(1.061405429f);
  p = S::fma(p, t, S::broadcast(-1.453152027f));
  p = S::fma(p, t, S::broadcast(1.421413741f));
  p = S::fma(p, t, S::broadcast(-0.284496736f));
  p = S::fma(p, t, S::broadcast(0.254829592f));
  p = S::mul(p, t);
  const auto magnitude = S::fnma(p, exp<S>(S::mul(S::sub(S::zero(), z), z)), one);
  return S::with_sign_of(magnitude, x);
}

// The exact GELU, x/2 (1 + erf(x / sqrt 2)), as torch's default.
template <typename S>
inline typename S::Vector gelu(typename S::Vector x) {
  const auto e = erf<S>(S::mul(x, S::broadcast(0.70710678118654752f)));
  return S::mul(S::mul(x, S::broadcast(0.5f)), S::add(e, S::broadcast(1.0f)));
}

}  // namespace diffuse::models::simd
