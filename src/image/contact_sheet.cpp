#include "image/contact_sheet.h"

#include "util/error.h"

namespace diffuse::image {

namespace {

void check_rgb(const at::Tensor& image, const char* what) {
  if (image.dim() != 3 || image.size(2) != 3 || image.scalar_type() != at::kByte) {
    throw Error(std::string(what) + ": expected uint8 [H, W, 3], got " + std::string(image.toString()) + " " +
                c10::str(image.sizes()));
  }
}

}  // namespace

at::Tensor contact_sheet(const std::vector<at::Tensor>& cells, int columns, int gap, uint8_t background) {
  if (cells.empty() || columns < 1) throw Error("contact_sheet: no cells or no columns");
  for (const auto& cell : cells) check_rgb(cell, "contact_sheet");
  const int64_t h = cells[0].size(0), w = cells[0].size(1);
  for (const auto& cell : cells) {
    if (cell.size(0) != h || cell.size(1) != w) throw Error("contact_sheet: cells differ in size");
  }
  const int64_t count = static_cast<int64_t>(cells.size());
  const int64_t cols = std::min<int64_t>(columns, count);
  const int64_t rows = (count + cols - 1) / cols;
  auto sheet = at::full({rows * (h + gap) + gap, cols * (w + gap) + gap, 3}, background, at::kByte);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t top = gap + (i / cols) * (h + gap), left = gap + (i % cols) * (w + gap);
    sheet.slice(0, top, top + h).slice(1, left, left + w).copy_(cells[i]);
  }
  return sheet;
}

at::Tensor side_by_side(const std::vector<at::Tensor>& images, int gap, uint8_t background) {
  if (images.empty()) throw Error("side_by_side: no images");
  int64_t width = -gap;
  for (const auto& image : images) {
    check_rgb(image, "side_by_side");
    if (image.size(0) != images[0].size(0)) throw Error("side_by_side: images differ in height");
    width += image.size(1) + gap;
  }
  auto row = at::full({images[0].size(0), width, 3}, background, at::kByte);
  int64_t left = 0;
  for (const auto& image : images) {
    row.slice(1, left, left + image.size(1)).copy_(image);
    left += image.size(1) + gap;
  }
  return row;
}

at::Tensor resize_image(const at::Tensor& image, int height, int width) {
  check_rgb(image, "resize_image");
  if (height < 1 || width < 1) throw Error("resize_image: size must be positive");
  const auto chw = image.permute({2, 0, 1}).unsqueeze(0).to(at::kFloat);
  const bool shrinking = height < image.size(0) || width < image.size(1);
  const auto resized = shrinking ? at::adaptive_avg_pool2d(chw, {height, width})
                                 : at::upsample_nearest2d(chw, {height, width});
  return resized[0].permute({1, 2, 0}).round().clamp(0, 255).to(at::kByte).contiguous();
}

}  // namespace diffuse::image
