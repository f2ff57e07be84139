// Resizing 8-bit images exactly as Pillow 9 does: AUTOMATIC1111's `Lanczos` and `Nearest` upscalers
// are one PIL Image.resize, and its hires fix enlarges decoded images the same way.
#pragma once
#include <optional>
#include <string>

#include <ATen/ATen.h>

namespace diffuse::image {

enum class ResampleFilter {
  Nearest,  // PIL.Image.NEAREST: the source pixel under each output pixel's centre
  Lanczos,  // PIL.Image.LANCZOS: separable, support 3 (scaled up when shrinking), 8-bit fixed point
};

// "nearest" / "lanczos" (any case) -> the filter; nullopt for another name.
std::optional<ResampleFilter> resample_filter_named(const std::string& name);
const char* resample_filter_name(ResampleFilter filter);  // "nearest", "lanczos"

// uint8 [H, W, C] (C = 1 L, 2 LA, 3 RGB, 4 RGBA) -> uint8 [height, width, C], bit for bit what
// Image.resize((width, height), filter) gives for the PIL image of that mode: Lanczos runs a horizontal
// then a vertical pass in fixed point (22 fraction bits, rounding, the 8-bit clip after each pass), on
// alpha-premultiplied colours for LA and RGBA (Pillow's La / RGBa round trip); Nearest picks pixels
// by Pillow's accumulated source coordinates. The same size returns a copy. Throws diffuse::Error for
// another tensor, or a size below 1 pixel.
at::Tensor resize_like_pillow(const at::Tensor& pixels, int width, int height, ResampleFilter filter);

}  // namespace diffuse::image
