// The image edits img2img, inpainting and outpainting need before any model sees a picture:
// channel conversions, resizing, padding and mask blurring, on uint8 [H, W, C] pixels as
// read_png() gives them.
#pragma once
#include <ATen/ATen.h>

namespace diffuse::image {

// Grey (C = 1), grey + alpha, RGB or RGBA -> RGB [H, W, 3]: grey is repeated, alpha dropped (as
// PIL's convert("RGB"), which diffusers and AUTOMATIC1111 apply to init images).
at::Tensor to_rgb(const at::Tensor& pixels);
// -> [H, W] uint8 luma, PIL's convert("L"): (19595 R + 38470 G + 7471 B + 2^15) >> 16; grey
// stays, alpha is dropped.
at::Tensor to_grey(const at::Tensor& pixels);

// uint8 [H, W, C] resampled to width x height: bicubic with antialiasing when shrinking (close to
// PIL's), the identity when the size already matches.
at::Tensor resize(const at::Tensor& pixels, int width, int height);

struct Padding {
  int left = 0;
  int right = 0;
  int top = 0;
  int bottom = 0;
  bool empty() const { return left == 0 && right == 0 && top == 0 && bottom == 0; }
};
// Pads [H, W, C] by repeating the outermost row or column outward.
at::Tensor pad_edge(const at::Tensor& pixels, const Padding& padding);
// Pads with `fill` everywhere outside the original.
at::Tensor pad_constant(const at::Tensor& pixels, const Padding& padding, int fill);

// A float [H, W] mask blurred with a Gaussian of standard deviation `radius` pixels (the kernel
// spans 2.5 radii each side, as AUTOMATIC1111's mask blur); radius 0 leaves it as it is. Edges
// repeat outward, so a mask touching the border stays full there.
at::Tensor blur_mask(const at::Tensor& mask, double radius);

}  // namespace diffuse::image
