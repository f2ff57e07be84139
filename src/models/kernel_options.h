#pragma once
// Which implementation each hot operation runs: the fastest by default, libtorch's own paths for
// A/B measurements of one build. The one place these choices live and the environment is read.

namespace diffuse::models {

enum class AttentionKernel {
  Fused,    // models/fused_attention.h where the CPU has it, else Blocked
  Blocked,  // libtorch matrix products over blocks of query rows
  Chunked,  // the differentiable one training uses
};

struct KernelOptions {
  AttentionKernel attention = AttentionKernel::Fused;
  bool fused_norms = true;           // GroupNorm(+SiLU), LayerNorm and GEGLU kernels (models/fused_ops.h)
  bool packed_convolutions = true;   // UNet convolution kernels reordered once (models/conv.h)
  bool packed_linear_layers = true;  // weights packed once for oneDNN (models/linear.h)

  // Defaults, changed by DIFFUSE_ATTENTION=blocked|chunked, DIFFUSE_FUSED=off, DIFFUSE_CONV=plain and
  // DIFFUSE_LINEAR=plain, so a measurement can switch one part back without a rebuild.
  static KernelOptions from_environment();
};

// Process-wide, because the kernels run deep inside modules that take no options: from_environment()
// until set. Set it before loading a model (packing happens at load time).
const KernelOptions& kernel_options();
void set_kernel_options(const KernelOptions& options);

}  // namespace diffuse::models
