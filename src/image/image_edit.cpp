#include "image/image_edit.h"

#include <cmath>
#include <string>

#include "util/error.h"

namespace diffuse::image {

namespace {

void check_pixels(const at::Tensor& pixels, const char* what) {
  if (pixels.dim() != 3 || pixels.scalar_type() != at::kByte || pixels.size(2) < 1 || pixels.size(2) > 4 ||
      pixels.size(0) < 1 || pixels.size(1) < 1) {
    throw Error(std::string(what) + ": expected uint8 pixels [H, W, 1-4], got " + std::string(pixels.toString()) +
                " " + c10::str(pixels.sizes()));
  }
}

// Indices 0..size-1 extended by `before` and `after` copies of the ends.
at::Tensor clamped_indices(int64_t size, int before, int after) {
  return at::arange(-before, size + after, at::kLong).clamp(0, size - 1);
}

}  // namespace

at::Tensor to_rgb(const at::Tensor& pixels) {
  check_pixels(pixels, "to_rgb");
  const int64_t channels = pixels.size(2);
  if (channels >= 3) return pixels.narrow(2, 0, 3).contiguous();
  return pixels.narrow(2, 0, 1).repeat({1, 1, 3}).contiguous();
}

at::Tensor to_grey(const at::Tensor& pixels) {
  check_pixels(pixels, "to_grey");
  if (pixels.size(2) < 3) return pixels.select(2, 0).contiguous();
  const at::Tensor wide = pixels.narrow(2, 0, 3).to(at::kInt);
  const at::Tensor luma = wide.select(2, 0) * 19595 + wide.select(2, 1) * 38470 + wide.select(2, 2) * 7471 + 0x8000;
  return at::bitwise_right_shift(luma, 16).to(at::kByte).contiguous();
}

at::Tensor resize(const at::Tensor& pixels, int width, int height) {
  check_pixels(pixels, "resize");
  if (width < 1 || height < 1) throw Error("resize: size " + std::to_string(width) + "x" + std::to_string(height));
  if (pixels.size(0) == height && pixels.size(1) == width) return pixels;
  const at::Tensor planar = pixels.permute({2, 0, 1}).unsqueeze(0).to(at::kFloat);
  const at::Tensor resized = at::_upsample_bicubic2d_aa(planar, {height, width}, /*align_corners=*/false);
  return resized.squeeze(0).permute({1, 2, 0}).round().clamp(0, 255).to(at::kByte).contiguous();
}

at::Tensor pad_edge(const at::Tensor& pixels, const Padding& padding) {
  check_pixels(pixels, "pad_edge");
  const at::Tensor rows = clamped_indices(pixels.size(0), padding.top, padding.bottom);
  const at::Tensor columns = clamped_indices(pixels.size(1), padding.left, padding.right);
  return pixels.index_select(0, rows).index_select(1, columns).contiguous();
}

at::Tensor pad_constant(const at::Tensor& pixels, const Padding& padding, int fill) {
  check_pixels(pixels, "pad_constant");
  at::Tensor canvas = at::full({pixels.size(0) + padding.top + padding.bottom, pixels.size(1) + padding.left + padding.right,
                                pixels.size(2)},
                               fill, at::kByte);
  canvas.narrow(0, padding.top, pixels.size(0)).narrow(1, padding.left, pixels.size(1)).copy_(pixels);
  return canvas;
}

at::Tensor blur_mask(const at::Tensor& mask, double radius) {
  if (mask.dim() != 2) throw Error("blur_mask: expected a [H, W] mask, got " + c10::str(mask.sizes()));
  if (!(radius > 0)) return mask;
  const auto reach = static_cast<int64_t>(std::ceil(2.5 * radius));
  const at::Tensor offsets = at::arange(-reach, reach + 1, at::kDouble);
  at::Tensor kernel = at::exp(-(offsets * offsets) / (2 * radius * radius));
  kernel = (kernel / kernel.sum()).to(at::kFloat);
  at::Tensor planar = mask.to(at::kFloat).unsqueeze(0).unsqueeze(0);
  planar = at::replication_pad2d(planar, {reach, reach, reach, reach});
  planar = at::conv2d(planar, kernel.view({1, 1, 1, -1}));
  planar = at::conv2d(planar, kernel.view({1, 1, -1, 1}));
  return planar.squeeze(0).squeeze(0).clamp(0, 1).contiguous();
}

}  // namespace diffuse::image
