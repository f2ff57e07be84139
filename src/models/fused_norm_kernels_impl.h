#pragma once
// The fused norm kernels (fused_norm_kernels.h), written once over an instruction-set struct S
// (simd_avx2.h, simd_avx512.h). Include only inside a DIFFUSE_TARGET_BEGIN region for the sets
// instantiated (simd_target.h), after the standard headers: these templates take its target.
// Includes only simd_math.h, which has the same requirement.
#include "models/simd_math.h"

namespace diffuse::models::norm_kernels {

// Mean and 1/sqrt(variance + eps) of n values, two passes (the values are in cache for the second).
struct Moments {
  float mean, inverse_std;
};

template <typename S, typename T>
Moments moments(const T* x, int64_t n, float eps) {
  auto sum = S::zero();
  for (int64_t i = 0; i < n; i += S::kLanes) sum = S::add(sum, S::load(x + i, S::first_lanes(n - i)));
  const float mean = S::horizontal_sum(sum) / static_cast<float>(n);
  const auto centre = S::broadcast(mean);
  auto squares = S::zero();
  for (int64_t i = 0; i < n; i += S::kLanes) {
    const auto lanes = S::first_lanes(n - i);
    const auto d = S::zero_outside(lanes, S::sub(S::load(x + i, lanes), centre));
    squares = S::fma(d, d, squares);
  }
  return {mean, 1.0f / __builtin_sqrtf(S::horizontal_sum(squares) / static_cast<float>(n) + eps)};
}

template <typename S, typename T>
void group_norm_span(const T* x, T* y, int64_t channels, int64_t plane, const float* gamma, const float* beta,
                     float eps, bool then_silu) {
  const Moments m = moments<S>(x, channels * plane, eps);
  for (int64_t c = 0; c < channels; ++c) {
    const float scale = m.inverse_std * gamma[c];
    const auto a = S::broadcast(scale), b = S::broadcast(beta[c] - m.mean * scale);
    const T* in = x + c * plane;
    T* out = y + c * plane;
    for (int64_t i = 0; i < plane; i += S::kLanes) {
      const auto lanes = S::first_lanes(plane - i);
      auto v = S::fma(S::load(in + i, lanes), a, b);
      if (then_silu) v = simd::silu<S>(v);
      S::store(out + i, v, lanes);
    }
  }
}

template <typename S, typename T>
void layer_norm_row(const T* x, T* y, int64_t n, const float* gamma, const float* beta, float eps) {
  const Moments m = moments<S>(x, n, eps);
  const auto centre = S::broadcast(m.mean), inverse_std = S::broadcast(m.inverse_std);
  for (int64_t i = 0; i < n; i += S::kLanes) {
    const auto lanes = S::first_lanes(n - i);
    const auto normalised = S::mul(S::sub(S::load(x + i, lanes), centre), inverse_std);
    S::store(y + i, S::fma(normalised, S::load(gamma + i, lanes), S::load(beta + i, lanes)), lanes);
  }
}

template <typename S, typename T>
void geglu_row(const T* x, T* y, int64_t half) {
  for (int64_t i = 0; i < half; i += S::kLanes) {
    const auto lanes = S::first_lanes(half - i);
    S::store(y + i, S::mul(S::load(x + i, lanes), simd::gelu<S>(S::load(x + half + i, lanes))), lanes);
  }
}

template <typename S, typename T>
constexpr NormKernels<T> kKernels{group_norm_span<S, T>, layer_norm_row<S, T>, geglu_row<S, T>};

}  // namespace diffuse::models::norm_kernels
