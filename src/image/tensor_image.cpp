#include "image/tensor_image.h"

#include "util/error.h"

namespace diffuse::image {

at::Tensor to_uint8_image(const at::Tensor& decoded) {
  if (decoded.dim() != 4 || !at::isFloatingType(decoded.scalar_type())) {
    throw Error("to_uint8_image: expected a floating-point [B, C, H, W] tensor, got " +
                std::string(decoded.toString()) + " " + c10::str(decoded.sizes()));
  }
  // diffusers' VaeImageProcessor.denormalize runs in the decoder's dtype and device; only then
  // does the image become float32 numpy. The clamp follows the widening to float32 because torch
  // 1.13 has no CPU clamp for half; clamping to 0 and 1 gives the same values either way.
  const at::Tensor unit = decoded.detach() / 2 + 0.5;
  at::Tensor hwc = unit.permute({0, 2, 3, 1}).to(at::kCPU).to(at::kFloat).clamp(0, 1);
  // A NaN (a diverged run) would be undefined as uint8; numpy on x86 yields 0, so make that explicit.
  hwc = at::nan_to_num(hwc, 0.0);
  // torch.round, like numpy.round, rounds halves to even.
  return (hwc * 255).round().to(at::kByte).contiguous();
}

}  // namespace diffuse::image
