// Tensors <-> 8-bit images.
#pragma once
#include <ATen/ATen.h>

namespace diffuse::image {

// A VAE output batch [B, C, H, W] in [-1, 1] to uint8 [B, H, W, C] on the CPU, exactly as diffusers
// does it: (x / 2 + 0.5).clamp(0, 1) in the input's dtype, then in float32 numpy's
// (x * 255).round() (half to even) -> uint8. Throws diffuse::Error for anything but a 4-D
// floating-point tensor.
at::Tensor to_uint8_image(const at::Tensor& decoded);

}  // namespace diffuse::image
