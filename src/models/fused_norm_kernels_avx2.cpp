// The fused norm kernels compiled for AVX2 and FMA.
#include "models/fused_norm_kernels.h"
#include "models/simd_avx2.h"

#ifdef DIFFUSE_X86_KERNELS
DIFFUSE_TARGET_BEGIN(DIFFUSE_AVX2_TARGET)
#include "models/fused_norm_kernels_impl.h"
DIFFUSE_TARGET_END

namespace diffuse::models {

template <typename T>
const NormKernels<T>& avx2_norm_kernels() {
  return norm_kernels::kKernels<Avx2, T>;
}
template const NormKernels<float>& avx2_norm_kernels();
template const NormKernels<uint16_t>& avx2_norm_kernels();

}  // namespace diffuse::models
#endif
