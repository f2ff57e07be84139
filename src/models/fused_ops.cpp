#include "models/fused_ops.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <string>
#include <type_traits>

#include "models/fused_norm_kernels.h"
#include "models/kernel_options.h"
#include "util/error.h"

namespace diffuse::models {

namespace {

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

#ifdef DIFFUSE_X86_KERNELS
// The widest kernels the CPU class runs for storage T. An Avx512 CPU without AVX512_BF16 takes the
// AVX2 ones for bf16 storage: the AVX-512 ones round with vcvtneps2bf16, and these norms are bound
// by memory, not by the vector width.
template <typename T>
const NormKernels<T>& kernels_for(CpuClass cpu) {
  const CpuClass avx512_from = std::is_same_v<T, float> ? CpuClass::Avx512 : CpuClass::Avx512Bf16;
  return cpu >= avx512_from ? avx512_norm_kernels<T>() : avx2_norm_kernels<T>();
}
#endif

// Calls op(input elements, output elements, kernels) with both tensors' storage as the kernels
// address it and the kernels for the configured CPU class.
template <typename Op>
void with_kernels(const at::Tensor& x, at::Tensor& y, const char* op_name, Op op) {
  const CpuClass cpu = kernel_options().cpu;
#ifdef DIFFUSE_X86_KERNELS
  if (cpu >= CpuClass::Avx2) {
    if (x.scalar_type() == at::kBFloat16) {
      op(bf16_bits(x), bf16_bits(y), kernels_for<uint16_t>(cpu));
    } else {
      op(x.data_ptr<float>(), y.data_ptr<float>(), kernels_for<float>(cpu));
    }
    return;
  }
#endif
  throw Error(std::string(op_name) + " needs AVX2 and FMA (CPU class avx2 or above); this run's class is " +
              cpu_class_name(cpu));
}

}  // namespace

bool use_fused_kernels(const at::Tensor& x) {
#ifdef DIFFUSE_X86_KERNELS
  if (!x.device().is_cpu() || !kernel_options().fused_norms) return false;
  if (at::GradMode::is_enabled() && x.requires_grad()) return false;
  return (x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kFloat) && kernel_options().cpu >= CpuClass::Avx2;
#else
  return false;
#endif
}

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
  with_kernels(x, y, "fused group norm", [&](const auto* in, auto* out, const auto& kernels) {
    at::parallel_for(0, batch * groups, 1, [&](int64_t begin, int64_t end) {
      for (int64_t span = begin; span < end; ++span) {
        const int64_t first_channel = span % groups * per_group, offset = span * per_group * plane;
        kernels.group_norm_span(in + offset, out + offset, per_group, plane,
                                gamma.data_ptr<float>() + first_channel, beta.data_ptr<float>() + first_channel,
                                static_cast<float>(eps), then_silu);
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
  with_kernels(x, y, "fused layer norm", [&](const auto* in, auto* out, const auto& kernels) {
    at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row)
        kernels.layer_norm_row(in + row * width, out + row * width, width, gamma.data_ptr<float>(),
                               beta.data_ptr<float>(), static_cast<float>(eps));
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
  with_kernels(x, y, "fused GEGLU", [&](const auto* in, auto* out, const auto& kernels) {
    at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) kernels.geglu_row(in + row * width, out + row * half, half);
    });
  });
  return y;
}

}  // namespace diffuse::models
