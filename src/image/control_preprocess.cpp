#include "image/control_preprocess.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "image/image_edit.h"
#include "image/opencv_calls.h"
#include "util/error.h"
#include "util/format.h"

namespace diffuse::image {

namespace {

using Kind = ControlPreprocessor::Kind;

// One number a preprocessor takes after its name, in the order the text gives them.
struct PreprocessorParameter {
  std::string_view placeholder;  // in the usage line: canny:LOW:HIGH
  std::string_view meaning;      // in errors: "low threshold must be a number"
  double ControlPreprocessor::*field;
  double minimum;
  double maximum;
};

struct PreprocessorEntry {
  std::string_view name;
  Kind kind;
  int parameter_count;
  PreprocessorParameter parameters[2];
};

constexpr double kUnbounded = std::numeric_limits<double>::infinity();

// Every preprocessor the text can name. The ranges are AUTOMATIC1111's sliders where the value has
// a meaning beyond them (a threshold level above 255 would blacken every map); thresholds of
// cv::Canny and tile factors have no upper limit there that matters.
constexpr PreprocessorEntry kPreprocessors[] = {
    {"canny", Kind::canny, 2,
     {{"LOW", "low threshold", &ControlPreprocessor::canny_low, 0, kUnbounded},
      {"HIGH", "high threshold", &ControlPreprocessor::canny_high, 0, kUnbounded}}},
    {"invert", Kind::invert, 0, {}},
    {"threshold", Kind::threshold, 1, {{"LEVEL", "level", &ControlPreprocessor::threshold_level, 0, 255}}},
    {"tile", Kind::tile, 1, {{"FACTOR", "downsample factor", &ControlPreprocessor::tile_downsample, 1, kUnbounded}}},
    {"none", Kind::none, 0, {}},
};

const PreprocessorEntry& entry_of(Kind kind) {
  for (const auto& entry : kPreprocessors) {
    if (entry.kind == kind) return entry;
  }
  throw Error("control preprocessor: kind " + std::to_string(static_cast<int>(kind)) + " is not in the table");
}

std::string known_names() {
  std::string names;
  for (const auto& entry : kPreprocessors) names += (names.empty() ? "" : ", ") + std::string(entry.name);
  return names;
}

std::string usage(const PreprocessorEntry& entry) {
  std::string text = std::string(entry.name);
  if (entry.parameter_count == 0) return text;
  std::string full = text;
  for (int i = 0; i < entry.parameter_count; ++i) full += ":" + std::string(entry.parameters[i].placeholder);
  return text + " or " + full;
}

std::vector<std::string_view> split_on_colons(std::string_view text) {
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    const size_t colon = text.find(':', start);
    parts.push_back(text.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start));
    if (colon == std::string_view::npos) return parts;
    start = colon + 1;
  }
}

double parse_parameter(const PreprocessorEntry& entry, const PreprocessorParameter& parameter, std::string_view text) {
  const std::string prefix = std::string(entry.name) + ": " + std::string(parameter.meaning) + " must be ";
  const std::string quoted = "'" + std::string(text) + "'";
  double value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
    throw Error(prefix + "a number, not " + quoted);
  }
  if (value < parameter.minimum || value > parameter.maximum) {
    const std::string range = parameter.maximum == kUnbounded
                                  ? "at least " + format_number(parameter.minimum)
                                  : "between " + format_number(parameter.minimum) + " and " + format_number(parameter.maximum);
    throw Error(prefix + range + ", not " + quoted);
  }
  return value;
}

void check_control_pixels(const at::Tensor& pixels, const char* what) {
  if (pixels.dim() != 3 || pixels.scalar_type() != at::kByte || pixels.size(0) < 1 || pixels.size(1) < 1 ||
      pixels.size(2) < 1 || pixels.size(2) > 4) {
    throw Error(std::string(what) + ": expected uint8 pixels [H, W, 1-4], got " + std::string(pixels.toString()) +
                " " + c10::str(pixels.sizes()));
  }
}

// The annotators' pad64: how far a side grows to reach the next multiple of 64.
int padding_to_multiple_of_64(int64_t size) { return static_cast<int>((size + 63) / 64 * 64 - size); }

// AUTOMATIC1111's canny at the image's own resolution: its resize_image_with_pad() edge-pads bottom
// and right to multiples of 64 before cv::Canny and crops afterwards. The padding changes edges
// next to the bottom and right borders (the Sobel and the non-maximum suppression see past them),
// so it is part of matching the reference, not a detail.
at::Tensor canny_map(const at::Tensor& rgb, double low, double high) {
  const int64_t height = rgb.size(0);
  const int64_t width = rgb.size(1);
  Padding padding;
  padding.bottom = padding_to_multiple_of_64(height);
  padding.right = padding_to_multiple_of_64(width);
  const at::Tensor padded = padding.empty() ? rgb.contiguous() : pad_edge(rgb, padding);
  at::Tensor edges = at::empty({padded.size(0), padded.size(1)}, at::kByte);
  canny_edges(padded.data_ptr<std::uint8_t>(), static_cast<int>(padded.size(0)), static_cast<int>(padded.size(1)),
              low, high, edges.data_ptr<std::uint8_t>());
  return edges.narrow(0, 0, height).narrow(1, 0, width).unsqueeze(2).repeat({1, 1, 3}).contiguous();
}

// AUTOMATIC1111's threshold: white (in all channels) where the darkest channel is above the level.
at::Tensor threshold_map(const at::Tensor& rgb, double level) {
  const at::Tensor above = std::get<0>(rgb.min(2, /*keepdim=*/true)).to(at::kDouble).gt(level);
  return above.to(at::kByte).mul(255).repeat({1, 1, 3}).contiguous();
}

// AUTOMATIC1111's tile_resample: factors below 1.1 leave the image alone; others shrink each side
// to int(side / factor) with OpenCV's area resampling.
at::Tensor tile_map(const at::Tensor& rgb, double factor) {
  if (factor < 1.1) return rgb;
  const int64_t height = rgb.size(0);
  const int64_t width = rgb.size(1);
  const auto new_height = static_cast<int>(static_cast<double>(height) / factor);
  const auto new_width = static_cast<int>(static_cast<double>(width) / factor);
  if (new_height < 1 || new_width < 1) {
    throw Error("tile: downsample factor " + format_number(factor) + " leaves nothing of a " + std::to_string(width) +
                "x" + std::to_string(height) + " image");
  }
  at::Tensor resized = at::empty({new_height, new_width, 3}, at::kByte);
  resize_area(rgb.data_ptr<std::uint8_t>(), static_cast<int>(height), static_cast<int>(width), 3, new_height, new_width,
              resized.data_ptr<std::uint8_t>());
  return resized;
}

}  // namespace

ControlPreprocessor ControlPreprocessor::parse(std::string_view spec) {
  const std::vector<std::string_view> parts = split_on_colons(spec);
  for (const auto& entry : kPreprocessors) {
    if (entry.name != parts[0]) continue;
    const int given = static_cast<int>(parts.size()) - 1;
    if (given != 0 && given != entry.parameter_count) {
      throw Error(std::string(entry.name) + ": expected " + usage(entry) + ", not '" + std::string(spec) + "'");
    }
    ControlPreprocessor preprocessor;
    preprocessor.kind = entry.kind;
    for (int i = 0; i < given; ++i) {
      preprocessor.*(entry.parameters[i].field) = parse_parameter(entry, entry.parameters[i], parts[i + 1]);
    }
    return preprocessor;
  }
  throw Error("control preprocessor: unknown '" + std::string(parts[0]) + "' (known: " + known_names() + ")");
}

std::string_view ControlPreprocessor::name() const { return entry_of(kind).name; }

std::string ControlPreprocessor::to_string() const {
  const auto& entry = entry_of(kind);
  std::string text(entry.name);
  for (int i = 0; i < entry.parameter_count; ++i) text += ":" + format_number(this->*(entry.parameters[i].field));
  return text;
}

at::Tensor ControlPreprocessor::apply(const at::Tensor& pixels) const {
  const at::Tensor rgb = annotator_rgb(pixels);
  switch (kind) {
    case Kind::none:
      return rgb;
    case Kind::canny:
      return canny_map(rgb, canny_low, canny_high);
    case Kind::invert:
      return (255 - rgb.to(at::kInt)).to(at::kByte);
    case Kind::threshold:
      return threshold_map(rgb, threshold_level);
    case Kind::tile:
      return tile_map(rgb, tile_downsample);
  }
  throw Error("control preprocessor: kind " + std::to_string(static_cast<int>(kind)) + " has no implementation");
}

at::Tensor annotator_rgb(const at::Tensor& pixels) {
  check_control_pixels(pixels, "control image");
  const int64_t channels = pixels.size(2);
  if (channels == 3) return pixels.contiguous();
  if (channels == 1) return pixels.repeat({1, 1, 3}).contiguous();
  // An alpha channel: the annotators' float32 arithmetic, operation by operation, so that every
  // truncation lands where numpy's does.
  const at::Tensor source = pixels.contiguous();
  const int64_t colour_channels = channels - 1;  // grey + alpha, or RGB + alpha
  const int64_t count = pixels.size(0) * pixels.size(1);
  at::Tensor rgb = at::empty({pixels.size(0), pixels.size(1), 3}, at::kByte);
  const std::uint8_t* in = source.data_ptr<std::uint8_t>();
  std::uint8_t* out = rgb.data_ptr<std::uint8_t>();
  for (int64_t i = 0; i < count; ++i) {
    const std::uint8_t* pixel = in + i * channels;
    const float alpha = static_cast<float>(pixel[colour_channels]) / 255.0f;
    const float background = 255.0f * (1.0f - alpha);
    for (int c = 0; c < 3; ++c) {
      const float colour = static_cast<float>(pixel[colour_channels == 1 ? 0 : c]);
      const float blended = colour * alpha + background;
      out[i * 3 + c] = static_cast<std::uint8_t>(std::fmin(std::fmax(blended, 0.0f), 255.0f));
    }
  }
  return rgb;
}

at::Tensor inpaint_condition(const at::Tensor& pixels, const at::Tensor& mask_pixels) {
  check_control_pixels(pixels, "inpaint condition image");
  check_control_pixels(mask_pixels, "inpaint condition mask");
  if (mask_pixels.size(0) != pixels.size(0) || mask_pixels.size(1) != pixels.size(1)) {
    throw Error("inpaint condition: the mask is " + std::to_string(mask_pixels.size(1)) + "x" +
                std::to_string(mask_pixels.size(0)) + ", the image " + std::to_string(pixels.size(1)) + "x" +
                std::to_string(pixels.size(0)));
  }
  // diffusers converts with PIL: "RGB" drops alpha, "L" is the luma the mask is compared by.
  const at::Tensor rgb = to_rgb(pixels);
  const at::Tensor grey = to_grey(mask_pixels);
  const int64_t count = pixels.size(0) * pixels.size(1);
  at::Tensor condition = at::empty({pixels.size(0), pixels.size(1), 3}, at::kFloat);
  const std::uint8_t* colour = rgb.data_ptr<std::uint8_t>();
  const std::uint8_t* mask = grey.data_ptr<std::uint8_t>();
  float* out = condition.data_ptr<float>();
  for (int64_t i = 0; i < count; ++i) {
    const bool masked = static_cast<float>(mask[i]) / 255.0f > 0.5f;
    for (int c = 0; c < 3; ++c) out[i * 3 + c] = masked ? -1.0f : static_cast<float>(colour[i * 3 + c]) / 255.0f;
  }
  return condition.permute({2, 0, 1}).unsqueeze(0).contiguous();
}

}  // namespace diffuse::image
