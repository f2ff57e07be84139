#pragma once
// Which implementation each hot operation runs: the fastest by default, libtorch's own paths for
// A/B measurements of one build, and a lower CPU class than the machine's for testing the paths other
// machines take. The one place these choices live and the environment is read.
#include <string>

namespace diffuse::models {

enum class AttentionKernel {
  Fused,    // models/fused_attention.h where the CPU class has it, else Blocked
  Blocked,  // libtorch matrix products over blocks of query rows
  Chunked,  // the differentiable one training uses
};

// Instruction-set classes our kernels are built for, each implying those before it.
enum class CpuClass {
  Generic,     // x86-64 baseline or another architecture: libtorch's paths only
  Avx2,        // AVX2 and FMA (most laptops and desktops: Intel Core 4th-14th gen, AMD Zen 1-3)
  Avx512,      // AVX-512 F/BW/VL/DQ
  Avx512Bf16,  // AVX512_BF16 as well (AMD Zen 4/5, Intel Cooper Lake, Sapphire Rapids with AMX): bf16 by default
};

// "generic", "avx2", "avx512", "avx512_bf16": the names DIFFUSE_CPU takes and reports print.
std::string cpu_class_name(CpuClass cpu);
// The class this CPU has, from its own feature flags.
CpuClass detected_cpu_class();

struct KernelOptions {
  AttentionKernel attention = AttentionKernel::Fused;
  bool fused_norms = true;           // GroupNorm(+SiLU), LayerNorm and GEGLU kernels (models/fused_ops.h)
  bool packed_convolutions = true;   // UNet convolution kernels reordered once (models/conv.h)
  bool packed_linear_layers = true;  // weights packed once for oneDNN (models/linear.h)
  CpuClass cpu = detected_cpu_class();  // kernels and the default precision follow this class

  // Defaults, changed by DIFFUSE_ATTENTION=blocked|chunked, DIFFUSE_FUSED=off, DIFFUSE_CONV=plain,
  // DIFFUSE_LINEAR=plain and DIFFUSE_CPU=generic|avx2|avx512|avx512_bf16 (a class above the CPU's is
  // refused), so a measurement can switch one part back without a rebuild. Throws Error naming the
  // variable for a value it does not know.
  static KernelOptions from_environment();
};

// Process-wide, because the kernels run deep inside modules that take no options: from_environment()
// until set. Set it before loading a model (packing happens at load time).
const KernelOptions& kernel_options();
void set_kernel_options(const KernelOptions& options);

// Whether bf16 inference runs on this CPU class: oneDNN's bf16 convolutions and matrix products need
// AVX-512 (AVX512_BF16 natively, plain AVX-512 emulating it exactly). Below that, libtorch falls back
// to reference loops that are slower than fp32 and round differently, so the engine refuses bf16 there.
bool bf16_supported();

// Where DIFFUSE_CPU lowers the class to avx512 or avx2, lowers libtorch's own dispatch
// (ATEN_CPU_CAPABILITY) and oneDNN's (ONEDNN_MAX_CPU_ISA) to match, unless those are set already, so
// that one machine computes as a machine of that class would. `generic` (diffuse's own kernels off)
// leaves both libraries as they are: ATen's scalar paths belong to other architectures, and its
// scalar sin and exp differ from the vectorised ones in the last bit. Call first thing in main(),
// before any tensor operation: both libraries read their variable once. Throws Error for an unknown
// DIFFUSE_CPU.
void limit_libraries_to_cpu_class();

}  // namespace diffuse::models
