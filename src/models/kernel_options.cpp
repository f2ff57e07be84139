#include "models/kernel_options.h"

#include <cstdlib>
#include <cstring>

#include "util/error.h"

namespace diffuse::models {

namespace {

bool environment_says(const char* variable, const char* value) {
  const char* choice = std::getenv(variable);
  return choice != nullptr && std::strcmp(choice, value) == 0;
}

KernelOptions& current() {
  static KernelOptions options = KernelOptions::from_environment();
  return options;
}

constexpr CpuClass kClasses[] = {CpuClass::Generic, CpuClass::Avx2, CpuClass::Avx512, CpuClass::Avx512Bf16};

// The class DIFFUSE_CPU asks for, capped at the CPU's own; the CPU's own when it is unset.
CpuClass requested_cpu_class() {
  const CpuClass detected = detected_cpu_class();
  const char* choice = std::getenv("DIFFUSE_CPU");
  if (choice == nullptr || *choice == '\0') return detected;
  for (const CpuClass c : kClasses) {
    if (cpu_class_name(c) != choice) continue;
    if (c > detected)
      throw Error("DIFFUSE_CPU=" + std::string(choice) + " is above this CPU's class (" + cpu_class_name(detected) +
                  "): it can only lower the class");
    return c;
  }
  throw Error("DIFFUSE_CPU=" + std::string(choice) + " is not generic, avx2, avx512 or avx512_bf16");
}

}  // namespace

std::string cpu_class_name(CpuClass cpu) {
  switch (cpu) {
    case CpuClass::Generic: return "generic";
    case CpuClass::Avx2: return "avx2";
    case CpuClass::Avx512: return "avx512";
    case CpuClass::Avx512Bf16: return "avx512_bf16";
  }
  return "generic";
}

CpuClass detected_cpu_class() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const CpuClass detected = [] {
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return CpuClass::Generic;
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512dq"))
      return CpuClass::Avx2;
    return __builtin_cpu_supports("avx512bf16") ? CpuClass::Avx512Bf16 : CpuClass::Avx512;
  }();
  return detected;
#else
  return CpuClass::Generic;
#endif
}

KernelOptions KernelOptions::from_environment() {
  KernelOptions options;
  if (environment_says("DIFFUSE_ATTENTION", "blocked")) options.attention = AttentionKernel::Blocked;
  if (environment_says("DIFFUSE_ATTENTION", "chunked")) options.attention = AttentionKernel::Chunked;
  options.fused_norms = !environment_says("DIFFUSE_FUSED", "off");
  options.packed_convolutions = !environment_says("DIFFUSE_CONV", "plain");
  options.packed_linear_layers = !environment_says("DIFFUSE_LINEAR", "plain");
  options.cpu = requested_cpu_class();
  return options;
}

const KernelOptions& kernel_options() { return current(); }
void set_kernel_options(const KernelOptions& options) { current() = options; }

bool bf16_supported() { return kernel_options().cpu >= CpuClass::Avx512; }

void limit_libraries_to_cpu_class() {
  const CpuClass cpu = requested_cpu_class();
  if (cpu == detected_cpu_class() || cpu == CpuClass::Generic) return;
  // Lowered and not generic: avx2, or avx512 on a CPU with AVX512_BF16.
  const bool avx2 = cpu == CpuClass::Avx2;
  setenv("ATEN_CPU_CAPABILITY", avx2 ? "avx2" : "avx512", 0);
  setenv("ONEDNN_MAX_CPU_ISA", avx2 ? "AVX2" : "AVX512_CORE", 0);
}

}  // namespace diffuse::models
