// Many small images on one page: the steps of a generation side by side.
#pragma once
#include <vector>

#include <ATen/ATen.h>

namespace diffuse::image {

// Lays `cells` (uint8 [h, w, 3], all the same size) out in rows of `columns`, left to right, with
// `gap` pixels of `background` gray between and around them. Returns uint8 [H, W, 3].
at::Tensor contact_sheet(const std::vector<at::Tensor>& cells, int columns, int gap = 4, uint8_t background = 255);

// Side by side, the same height: [h, w1 + gap + w2 + ..., 3].
at::Tensor side_by_side(const std::vector<at::Tensor>& images, int gap = 4, uint8_t background = 255);

// Shrinks (area average) or enlarges (nearest neighbour, keeping pixels crisp) uint8 [h, w, 3] to
// [height, width, 3].
at::Tensor resize_image(const at::Tensor& image, int height, int width);

}  // namespace diffuse::image
