// Reads back what a shapes picture shows from its pixels alone, for checking generated images
// against their prompt: background colour from the border, foreground = the largest connected
// region of pixels far from it, then the foreground's colour, centroid (-> position) and shape: the
// kind whose figure, drawn around the region's centre at the size that fits best, overlaps it most
// (intersection over union).
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "train/shapes_dataset.h"

namespace diffuse::train::test {

struct ShapeReading {
  int background = -1, colour = -1, position = -1, kind = -1;
  double fill_ratio = 0;  // of the bounding box, for messages
  double overlap = 0;     // intersection over union with the best figure
  int foreground_pixels = 0;
};

inline int nearest_colour(const std::array<double, 3>& rgb) {
  int best = 0;
  double best_distance = 1e18;
  for (size_t i = 0; i < shape_colours().size(); ++i) {
    double d = 0;
    for (int c = 0; c < 3; ++c) d += std::pow(rgb[c] - shape_colours()[i].rgb[c], 2);
    if (d < best_distance) best_distance = d, best = static_cast<int>(i);
  }
  return best;
}

inline double channel_median(std::vector<double> values) {
  std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
  return values[values.size() / 2];
}

// Mask of the largest 4-connected region of `mask` (w x h, row-major).
inline std::vector<char> largest_region(const std::vector<char>& mask, int w, int h) {
  std::vector<int> best;
  std::vector<char> seen(mask.size(), 0);
  for (size_t start = 0; start < mask.size(); ++start) {
    if (!mask[start] || seen[start]) continue;
    std::vector<int> region{static_cast<int>(start)};
    seen[start] = 1;
    for (size_t next = 0; next < region.size(); ++next) {
      const int x = region[next] % w, y = region[next] / w;
      for (const auto& [nx, ny] : {std::pair{x - 1, y}, std::pair{x + 1, y}, std::pair{x, y - 1}, std::pair{x, y + 1}}) {
        if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
        const size_t index = static_cast<size_t>(ny) * w + nx;
        if (mask[index] && !seen[index]) seen[index] = 1, region.push_back(static_cast<int>(index));
      }
    }
    if (region.size() > best.size()) best = std::move(region);
  }
  std::vector<char> largest(mask.size(), 0);
  for (int index : best) largest[index] = 1;
  return largest;
}

// `pixels`: uint8 [H, W, 3].
inline ShapeReading read_shape(const at::Tensor& pixels) {
  const auto image = pixels.to(at::kDouble).contiguous();
  const int h = static_cast<int>(image.size(0)), w = static_cast<int>(image.size(1));
  const auto* p = image.data_ptr<double>();
  const auto at_xy = [&](int x, int y, int c) { return p[(static_cast<int64_t>(y) * w + x) * 3 + c]; };
  ShapeReading reading;
  std::array<double, 3> background{};
  for (int c = 0; c < 3; ++c) {
    std::vector<double> border;
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) {
        if (x < 2 || y < 2 || x >= w - 2 || y >= h - 2) border.push_back(at_xy(x, y, c));
      }
    }
    background[c] = channel_median(border);
  }
  reading.background = nearest_colour(background);
  const auto& bg = shape_colours()[reading.background].rgb;
  std::vector<char> is_foreground(static_cast<size_t>(w) * h, 0);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      double d = 0;
      for (int c = 0; c < 3; ++c) d += std::pow(at_xy(x, y, c) - bg[c], 2);
      // Halfway to the nearest other palette colour (>= 170 apart): edge pixels split evenly.
      is_foreground[static_cast<size_t>(y) * w + x] = std::sqrt(d) >= 70;
    }
  }
  // The shape is the largest 4-connected region: a stray speck or a faint line along the image's
  // edge would otherwise stretch the bounding box and make every shape read as a star.
  const auto in_region = largest_region(is_foreground, w, h);
  std::array<std::vector<double>, 3> foreground;
  double sx = 0, sy = 0;
  int min_x = w, max_x = -1, min_y = h, max_y = -1;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      if (!in_region[static_cast<size_t>(y) * w + x]) continue;
      for (int c = 0; c < 3; ++c) foreground[c].push_back(at_xy(x, y, c));
      sx += x + 0.5, sy += y + 0.5;
      min_x = std::min(min_x, x), max_x = std::max(max_x, x), min_y = std::min(min_y, y), max_y = std::max(max_y, y);
    }
  }
  reading.foreground_pixels = static_cast<int>(foreground[0].size());
  if (reading.foreground_pixels < 4) return reading;
  std::array<double, 3> colour{};
  for (int c = 0; c < 3; ++c) colour[c] = channel_median(foreground[c]);
  reading.colour = nearest_colour(colour);
  const double cx = sx / reading.foreground_pixels / w, cy = sy / reading.foreground_pixels / h;
  double best = 1e9;
  for (int i = 0; i < 5; ++i) {
    const auto centre = position_centre(i);
    const double d = std::hypot(cx - centre[0], cy - centre[1]);
    if (d < best) best = d, reading.position = i;
  }
  reading.fill_ratio = reading.foreground_pixels / static_cast<double>((max_x - min_x + 1) * (max_y - min_y + 1));
  // Overlap rather than the bounding box's fill ratio alone: a decoded picture's edges are soft, and
  // its corners and points rounded, which moves every fill ratio towards a circle's, while the
  // figure's area and outline still tell the shapes apart. Each figure is tried at every size from
  // well below the small one to well above the large one, so the size jitter of the dataset (and
  // of generated shapes) does not decide the reading.
  const double centre_x = (min_x + max_x + 1) / 2.0, centre_y = (min_y + max_y + 1) / 2.0;
  for (double radius = 0.05 * w; radius <= 0.32 * w; radius += 0.005 * w) {
    for (int kind = 0; kind < static_cast<int>(shape_kinds().size()); ++kind) {
      int both = 0, either = 0;
      for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) {
          const bool figure = inside_shape(kind, (x + 0.5 - centre_x) / radius, (y + 0.5 - centre_y) / radius);
          const bool region = in_region[static_cast<size_t>(y) * w + x];
          both += figure && region;
          either += figure || region;
        }
      }
      const double overlap = either > 0 ? static_cast<double>(both) / either : 0;
      if (overlap > reading.overlap) reading.overlap = overlap, reading.kind = kind;
    }
  }
  return reading;
}

}  // namespace diffuse::train::test
