#include "models/fused_ops.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <cmath>
#include <cstring>
#include <string>

#include "models/avx512_math.h"
#include "models/kernel_options.h"
#include "util/error.h"

namespace diffuse::models {

#ifdef DIFFUSE_AVX512_KERNELS
namespace {

bool switched_off() { return !kernel_options().fused_norms; }

void require_supported(const at::Tensor& x, const char* op) {
  if ((x.scalar_type() != at::kBFloat16 && x.scalar_type() != at::kFloat) || !x.device().is_cpu())
    throw Error(std::string(op) + " takes bf16 or fp32 CPU tensors, got " + c10::toString(x.scalar_type()) + " on " +
                x.device().str());
}

// An affine parameter as fp32, or `fill` repeated where the layer has none.
at::Tensor affine_as_float(const at::Tensor& parameter, int64_t size, float fill, const char* op) {
  if (!parameter.defined()) return at::full({size}, fill, at::kFloat);
  if (parameter.numel() != size)
    throw Error(std::string(op) + ": affine parameter has " + std::to_string(parameter.numel()) +
                " values, expected " + std::to_string(size));
  return parameter.to(at::kFloat).contiguous();
}

using namespace avx512;

// 16 values as fp32 from either storage (masked lanes read as 0), and back.
DIFFUSE_KERNEL inline __m512 load_lanes(const uint16_t* p, __mmask16 lanes) { return load_bf16(p, lanes); }
DIFFUSE_KERNEL inline __m512 load_lanes(const float* p, __mmask16 lanes) { return _mm512_maskz_loadu_ps(lanes, p); }
DIFFUSE_KERNEL inline void store_lanes(uint16_t* p, __m512 x, __mmask16 lanes) { store_bf16(p, x, lanes); }
DIFFUSE_KERNEL inline void store_lanes(float* p, __m512 x, __mmask16 lanes) { _mm512_mask_storeu_ps(p, lanes, x); }

// Calls op(input elements, output elements) with both tensors' storage as the kernels address it.
template <typename Op>
void with_elements(const at::Tensor& x, at::Tensor& y, Op op) {
  if (x.scalar_type() == at::kBFloat16) {
    op(bf16_bits(x), bf16_bits(y));
  } else {
    op(x.data_ptr<float>(), y.data_ptr<float>());
  }
}

// Mean and 1/sqrt(variance + eps) of n values, two passes (the values are in cache for the second).
struct Moments {
  float mean, inverse_std;
};

template <typename T>
DIFFUSE_KERNEL Moments moments(const T* x, int64_t n, float eps) {
  __m512 sum = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) sum = _mm512_add_ps(sum, load_lanes(x + i, first_lanes(n - i)));
  const float mean = horizontal_sum(sum) / static_cast<float>(n);
  const __m512 centre = _mm512_set1_ps(mean);
  __m512 squares = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 lanes = first_lanes(n - i);
    const __m512 d = _mm512_maskz_sub_ps(lanes, load_lanes(x + i, lanes), centre);
    squares = _mm512_fmadd_ps(d, d, squares);
  }
  return {mean, 1.0f / std::sqrt(horizontal_sum(squares) / static_cast<float>(n) + eps)};
}

// One group: `channels` planes of `plane` values each, normalised together, scaled per channel.
template <typename T>
DIFFUSE_KERNEL void group_norm_span(const T* x, T* y, int64_t channels, int64_t plane,
                                    const float* gamma, const float* beta, float eps, bool then_silu) {
  const Moments m = moments(x, channels * plane, eps);
  for (int64_t c = 0; c < channels; ++c) {
    const float scale = m.inverse_std * gamma[c];
    const __m512 a = _mm512_set1_ps(scale), b = _mm512_set1_ps(beta[c] - m.mean * scale);
    const T* in = x + c * plane;
    T* out = y + c * plane;
    for (int64_t i = 0; i < plane; i += 16) {
      const __mmask16 lanes = first_lanes(plane - i);
      __m512 v = _mm512_fmadd_ps(load_lanes(in + i, lanes), a, b);
      if (then_silu) v = silu_ps(v);
      store_lanes(out + i, v, lanes);
    }
  }
}

template <typename T>
DIFFUSE_KERNEL void layer_norm_row(const T* x, T* y, int64_t n, const float* gamma,
                                   const float* beta, float eps) {
  const Moments m = moments(x, n, eps);
  const __m512 centre = _mm512_set1_ps(m.mean), inverse_std = _mm512_set1_ps(m.inverse_std);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 lanes = first_lanes(n - i);
    const __m512 normalised = _mm512_mul_ps(_mm512_sub_ps(load_lanes(x + i, lanes), centre), inverse_std);
    const __m512 v = _mm512_fmadd_ps(normalised, _mm512_maskz_loadu_ps(lanes, gamma + i),
                                     _mm512_maskz_loadu_ps(lanes, beta + i));
    store_lanes(y + i, v, lanes);
  }
}

template <typename T>
DIFFUSE_KERNEL void geglu_row(const T* x, T* y, int64_t half) {
  for (int64_t i = 0; i < half; i += 16) {
    const __mmask16 lanes = first_lanes(half - i);
    store_lanes(y + i, _mm512_mul_ps(load_lanes(x + i, lanes), gelu_ps(load_lanes(x + half + i, lanes))), lanes);
  }
}

}  // namespace
#endif

bool use_fused_kernels(const at::Tensor& x) {
#ifdef DIFFUSE_AVX512_KERNELS
  if (!x.device().is_cpu() || switched_off()) return false;
  if (at::GradMode::is_enabled() && x.requires_grad()) return false;
  if (x.scalar_type() == at::kBFloat16) return avx512_bf16_supported();
  return x.scalar_type() == at::kFloat && avx512_supported();
#else
  return false;
#endif
}

#ifdef DIFFUSE_AVX512_KERNELS

at::Tensor fused_group_norm(const at::Tensor& x_in, int64_t groups, const at::Tensor& weight, const at::Tensor& bias,
                            double eps, bool then_silu) {
  require_supported(x_in, "fused group norm");
  RECORD_FUNCTION(then_silu ? "diffuse::group_norm_silu" : "diffuse::group_norm", std::vector<c10::IValue>());
  if (x_in.dim() < 2 || groups <= 0 || x_in.size(1) % groups != 0)
    throw Error("fused group norm: input " + c10::str(x_in.sizes()) + " cannot be split into " +
                std::to_string(groups) + " groups of channels");
  const auto x = x_in.contiguous();
  const int64_t batch = x.size(0), channels = x.size(1), plane = x.numel() / std::max<int64_t>(1, batch * channels);
  const auto gamma = affine_as_float(weight, channels, 1.0f, "fused group norm");
  const auto beta = affine_as_float(bias, channels, 0.0f, "fused group norm");
  auto y = at::empty_like(x);
  const int64_t per_group = channels / groups;
  with_elements(x, y, [&](const auto* in, auto* out) {
    at::parallel_for(0, batch * groups, 1, [&](int64_t begin, int64_t end) {
      for (int64_t span = begin; span < end; ++span) {
        const int64_t first_channel = span % groups * per_group, offset = span * per_group * plane;
        group_norm_span(in + offset, out + offset, per_group, plane, gamma.data_ptr<float>() + first_channel,
                        beta.data_ptr<float>() + first_channel, static_cast<float>(eps), then_silu);
      }
    });
  });
  return y;
}

at::Tensor fused_layer_norm(const at::Tensor& x_in, const at::Tensor& weight, const at::Tensor& bias, double eps) {
  require_supported(x_in, "fused layer norm");
  RECORD_FUNCTION("diffuse::layer_norm", std::vector<c10::IValue>());
  const auto x = x_in.contiguous();
  const int64_t width = x.size(-1), rows = x.numel() / std::max<int64_t>(1, width);
  const auto gamma = affine_as_float(weight, width, 1.0f, "fused layer norm");
  const auto beta = affine_as_float(bias, width, 0.0f, "fused layer norm");
  auto y = at::empty_like(x);
  with_elements(x, y, [&](const auto* in, auto* out) {
    at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row)
        layer_norm_row(in + row * width, out + row * width, width, gamma.data_ptr<float>(), beta.data_ptr<float>(),
                       static_cast<float>(eps));
    });
  });
  return y;
}

at::Tensor fused_geglu(const at::Tensor& projected) {
  require_supported(projected, "fused GEGLU");
  RECORD_FUNCTION("diffuse::geglu", std::vector<c10::IValue>());
  if (projected.size(-1) % 2 != 0)
    throw Error("fused GEGLU: last dimension " + std::to_string(projected.size(-1)) + " is not even");
  const auto x = projected.contiguous();
  const int64_t width = x.size(-1), half = width / 2, rows = x.numel() / std::max<int64_t>(1, width);
  auto sizes = x.sizes().vec();
  sizes.back() = half;
  auto y = at::empty(sizes, x.options());
  with_elements(x, y, [&](const auto* in, auto* out) {
    at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) geglu_row(in + row * width, out + row * half, half);
    });
  });
  return y;
}

#else  // no x86-64 AVX-512 kernels in this build: use_fused_kernels() is always false

at::Tensor fused_group_norm(const at::Tensor&, int64_t, const at::Tensor&, const at::Tensor&, double, bool) {
  throw Error("fused kernels are built for x86-64 only");
}
at::Tensor fused_layer_norm(const at::Tensor&, const at::Tensor&, const at::Tensor&, double) {
  throw Error("fused kernels are built for x86-64 only");
}
at::Tensor fused_geglu(const at::Tensor&) { throw Error("fused kernels are built for x86-64 only"); }

#endif

}  // namespace diffuse::models
