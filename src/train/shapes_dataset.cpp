#include "train/shapes_dataset.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

#include "util/error.h"

namespace diffuse::train {

namespace {

constexpr double kPi = 3.14159265358979323846;
// Radius of a shape's circumscribing circle, as a fraction of the image side. Smaller shapes (0.12)
// came back from the 4x-downscaling VAE as blobs: a 16-pixel latent holds a figure of a few pixels only.
constexpr double kSmallRadius = 0.16;
constexpr double kLargeRadius = 0.23;
// Each pixel averages kSuper x kSuper samples so edges are antialiased.
constexpr int kSuper = 3;

// SplitMix64: a tiny generator whose output is fixed by its definition.
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
};

bool inside_polygon(const std::vector<std::array<double, 2>>& polygon, double x, double y) {
  bool inside = false;
  for (size_t i = 0, j = polygon.size() - 1; i < polygon.size(); j = i++) {
    const auto& a = polygon[i];
    const auto& b = polygon[j];
    if ((a[1] > y) != (b[1] > y) && x < (b[0] - a[0]) * (y - a[1]) / (b[1] - a[1]) + a[0]) inside = !inside;
  }
  return inside;
}

// Outline of a shape of circumradius 1 centred at the origin, y pointing down.
std::vector<std::array<double, 2>> outline(int kind) {
  std::vector<std::array<double, 2>> points;
  if (kind == 2) {  // triangle, apex up; lowered so its bounding box is centred
    for (int i = 0; i < 3; ++i) {
      const double angle = -kPi / 2 + i * 2 * kPi / 3;
      points.push_back({std::cos(angle), std::sin(angle) + 0.25});
    }
  } else if (kind == 3) {  // five-pointed star; inner radius 0.5 keeps its points wider than a latent pixel
    for (int i = 0; i < 10; ++i) {
      const double angle = -kPi / 2 + i * kPi / 5;
      const double r = i % 2 == 0 ? 1.0 : 0.5;
      points.push_back({r * std::cos(angle), r * std::sin(angle) + 0.1});
    }
  }
  return points;
}

bool inside_shape(int kind, const std::vector<std::array<double, 2>>& polygon, double x, double y) {
  switch (kind) {
    case 0: return x * x + y * y <= 0.85 * 0.85;               // circle
    case 1: return std::abs(x) <= 0.75 && std::abs(y) <= 0.75;  // square
    default: return inside_polygon(polygon, x, y);
  }
}

}  // namespace

const std::vector<NamedColour>& shape_colours() {
  static const std::vector<NamedColour> colours{
      {"red", {220, 40, 40}},    {"green", {40, 170, 60}},   {"blue", {40, 80, 220}},
      {"yellow", {240, 210, 40}}, {"white", {240, 240, 240}}, {"black", {25, 25, 25}},
  };
  return colours;
}

const std::vector<std::string>& shape_kinds() {
  static const std::vector<std::string> kinds{"circle", "square", "triangle", "star"};
  return kinds;
}

const std::vector<std::string>& shape_positions() {
  static const std::vector<std::string> positions{"left", "right", "top", "bottom", "centre"};
  return positions;
}

std::array<double, 2> position_centre(int position) {
  static const std::array<std::array<double, 2>, 5> centres{{{0.27, 0.5}, {0.73, 0.5}, {0.5, 0.27}, {0.5, 0.73}, {0.5, 0.5}}};
  if (position < 0 || position >= 5) throw Error("shapes: position index " + std::to_string(position) + " out of range");
  return centres[position];
}

std::string shape_caption(const ShapeSpec& spec) {
  static const std::array<const char*, 5> phrases{"on the left", "on the right", "at the top", "at the bottom",
                                                  "in the centre"};
  std::string caption = "a ";
  if (spec.size_named) caption += spec.large ? "large " : "small ";
  caption += std::string(shape_colours().at(spec.colour).name) + " " + shape_kinds().at(spec.kind) + " on a " +
             shape_colours().at(spec.background).name + " background";
  if (spec.position_named) caption += std::string(", ") + phrases.at(spec.position);
  return caption;
}

namespace {

std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> words;
  std::string word;
  for (const char c : text + " ") {
    if (std::isalpha(static_cast<unsigned char>(c))) {
      word += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (!word.empty()) {
      words.push_back(word);
      word.clear();
    }
  }
  return words;
}

}  // namespace

std::vector<std::string> words_outside_shapes_vocabulary(const std::string& prompt) {
  // Every word a caption can hold, read off the captions themselves so that it follows shape_caption().
  static const std::set<std::string> vocabulary = [] {
    std::set<std::string> words;
    const int colours = static_cast<int>(shape_colours().size());
    for (int kind = 0; kind < static_cast<int>(shape_kinds().size()); ++kind) {
      for (int position = 0; position < static_cast<int>(shape_positions().size()); ++position) {
        for (const bool large : {false, true}) {
          ShapeSpec spec{kind, 0, 1, position, large, true, true};
          for (const auto& word : words_of(shape_caption(spec))) words.insert(word);
        }
      }
    }
    for (int colour = 0; colour < colours; ++colour) {
      ShapeSpec spec{0, colour, (colour + 1) % colours, 0, false, true, true};
      for (const auto& word : words_of(shape_caption(spec))) words.insert(word);
    }
    return words;
  }();
  std::vector<std::string> unknown;
  for (const auto& word : words_of(prompt)) {
    if (!vocabulary.count(word) && std::find(unknown.begin(), unknown.end(), word) == unknown.end()) {
      unknown.push_back(word);
    }
  }
  return unknown;
}

bool inside_shape(int kind, double x, double y) {
  static const std::array<std::vector<std::array<double, 2>>, 4> outlines{outline(0), outline(1), outline(2), outline(3)};
  return inside_shape(kind, outlines.at(kind), x, y);
}

at::Tensor render_shape(const ShapeSpec& spec, int size, double dx, double dy, double scale) {
  const auto centre = position_centre(spec.position);
  const double cx = (centre[0] + dx) * size, cy = (centre[1] + dy) * size;
  const double radius = (spec.large ? kLargeRadius : kSmallRadius) * scale * size;
  const auto& fg = shape_colours().at(spec.colour).rgb;
  const auto& bg = shape_colours().at(spec.background).rgb;
  auto pixels = at::empty({size, size, 3}, at::kByte);
  auto* out = pixels.data_ptr<uint8_t>();
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      int hits = 0;
      for (int sy = 0; sy < kSuper; ++sy) {
        for (int sx = 0; sx < kSuper; ++sx) {
          const double px = (x + (sx + 0.5) / kSuper - cx) / radius;
          const double py = (y + (sy + 0.5) / kSuper - cy) / radius;
          hits += inside_shape(spec.kind, px, py);
        }
      }
      const double cover = static_cast<double>(hits) / (kSuper * kSuper);
      for (int c = 0; c < 3; ++c) {
        *out++ = static_cast<uint8_t>(std::lround(fg[c] * cover + bg[c] * (1 - cover)));
      }
    }
  }
  return pixels;
}

Dataset make_shapes_dataset(int count, int size, uint64_t seed) {
  if (count < 1) throw Error("shapes: the dataset needs at least one image, got " + std::to_string(count));
  if (size < 32) throw Error("shapes: image size " + std::to_string(size) + " is below 32 pixels");
  SplitMix64 rng{seed};
  const int colours = static_cast<int>(shape_colours().size());
  Dataset data;
  data.images = at::empty({count, 3, size, size});
  for (int i = 0; i < count; ++i) {
    ShapeSpec spec;
    spec.kind = rng.below(static_cast<int>(shape_kinds().size()));
    spec.colour = rng.below(colours);
    spec.background = (spec.colour + 1 + rng.below(colours - 1)) % colours;
    spec.position = rng.below(static_cast<int>(shape_positions().size()));
    spec.large = rng.below(2) == 1;
    const double dx = (rng.uniform() - 0.5) * 0.08, dy = (rng.uniform() - 0.5) * 0.08;
    const double scale = 0.9 + rng.uniform() * 0.2;
    // One caption in four leaves out the size, one in four the position.
    spec.size_named = rng.below(4) != 0;
    spec.position_named = rng.below(4) != 0;
    const auto pixels = render_shape(spec, size, dx, dy, scale);
    data.images[i] = pixels.permute({2, 0, 1}).to(at::kFloat) / 127.5 - 1.0;
    data.captions.push_back(shape_caption(spec));
  }
  data.description = "shapes (" + std::to_string(count) + " images of " + std::to_string(size) + "x" +
                     std::to_string(size) + ", seed " + std::to_string(seed) + ")";
  return data;
}

}  // namespace diffuse::train
