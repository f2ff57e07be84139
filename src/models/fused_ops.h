#pragma once
// Fused inference kernels for the layers between the matrix products: GroupNorm (with the SiLU that
// follows it in every ResNet block), LayerNorm and GEGLU's gating, in bf16 and fp32. libtorch 1.13's
// bf16 GroupNorm and LayerNorm take 15x as long as its fp32 ones (10.7 vs 0.6 ms on [2, 320, 64, 64],
// 2 threads), and its GEGLU makes three passes over the largest activation (in fp32 too: 190 ms of a
// 5.6 s 512x512 step). These make one or two passes in fp32 registers and round once, with AVX-512
// or AVX2 (models/fused_norm_kernels.h).
#include <ATen/ATen.h>

namespace diffuse::models {

// Whether `x` should take these kernels: bf16 or fp32 on a CPU class of Avx2 or above (AVX-512 ones
// from Avx512 for fp32 and Avx512Bf16 for bf16, AVX2 ones below), no gradient being recorded, and
// not switched off in kernel_options() (models/kernel_options.h).
bool use_fused_kernels(const at::Tensor& x);

// x: [N, C, ...]; weight, bias: [C] or undefined. Optionally SiLU on the result.
at::Tensor fused_group_norm(const at::Tensor& x, int64_t groups, const at::Tensor& weight, const at::Tensor& bias,
                            double eps, bool then_silu);
// Normalises over the last dimension; weight, bias: [D] or undefined.
at::Tensor fused_layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps);
// [..., 2H] -> first half * gelu(second half), diffusers' GEGLU after its projection.
at::Tensor fused_geglu(const at::Tensor& projected);

// A bf16 tensor's storage as raw 16-bit values, as the kernels address it.
inline const uint16_t* bf16_bits(const at::Tensor& t) {
  return reinterpret_cast<const uint16_t*>(t.data_ptr<at::BFloat16>());
}
inline uint16_t* bf16_bits(at::Tensor& t) { return reinterpret_cast<uint16_t*>(t.data_ptr<at::BFloat16>()); }

}  // namespace diffuse::models
