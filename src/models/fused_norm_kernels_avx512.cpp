// The fused norm kernels compiled for AVX-512 (bf16 storage also uses AVX512_BF16).
#include "models/fused_norm_kernels.h"
#include "models/simd_avx512.h"

#ifdef DIFFUSE_X86_KERNELS
DIFFUSE_TARGET_BEGIN(DIFFUSE_AVX512_TARGET)
#include "models/fused_norm_kernels_impl.h"
DIFFUSE_TARGET_END

namespace diffuse::models {

template <typename T>
const NormKernels<T>& avx512_norm_kernels() {
  return norm_kernels::kKernels<Avx512, T>;
}
template const NormKernels<float>& avx512_norm_kernels();
template const NormKernels<uint16_t>& avx512_norm_kernels();

}  // namespace diffuse::models
#endif
