#include "pipeline/control_unit.h"

#include <algorithm>
#include <cmath>

#include "image/image_edit.h"
#include "pipeline/model.h"
#include "util/error.h"
#include "util/format.h"

namespace diffuse::pipeline {

namespace fs = std::filesystem;

namespace {

InvalidParameter unit_error(size_t index, const std::string& problem) {
  return InvalidParameter("control", "unit " + std::to_string(index + 1) + ": " + problem);
}

fs::path find_controlnet(const std::string& name, const std::vector<fs::path>& dirs, size_t index) {
  if (name.empty()) throw unit_error(index, "names no ControlNet");
  std::error_code error;
  if (fs::exists(name, error)) return name;
  const std::vector<std::string> extensions = {"", ".safetensors", ".pth", ".pt", ".ckpt", ".bin"};
  std::string looked;
  for (const auto& dir : dirs) {
    looked += (looked.empty() ? "" : ", ") + dir.string();
    for (const auto& extension : extensions) {
      if (fs::exists(dir / (name + extension), error)) return dir / (name + extension);
    }
  }
  throw unit_error(index, "no ControlNet file or folder '" + name + "'" +
                              (dirs.empty() ? std::string(" (no ControlNet folder given to look it up in)")
                                            : " and no " + name + ".safetensors (.pth, .pt, .ckpt) in " + looked));
}

void check_fraction(double value, const char* what, size_t index) {
  if (!std::isfinite(value) || value < 0 || value > 1) {
    throw unit_error(index, std::string(what) + " " + format_number(value) + " must be a fraction of the steps, 0 to 1");
  }
}

// The median of each channel over the image's outermost rows and columns, as numpy's median of the
// uint8 border then cast back (the mean of the two middle values, truncated).
at::Tensor border_median(const at::Tensor& rgb) {
  const auto h = rgb.size(0), w = rgb.size(1);
  const auto border = at::cat({rgb[0], rgb[h - 1], rgb.select(1, 0), rgb.select(1, w - 1)}, 0).to(at::kFloat);
  const auto sorted = std::get<0>(border.sort(0));
  const auto n = sorted.size(0);
  const auto median = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  return median.floor().to(at::kByte);
}

}  // namespace

double ResolvedControlUnit::keep(int step, int steps) const {
  const double from = static_cast<double>(step) / steps, to = static_cast<double>(step + 1) / steps;
  return (from < start || to > end) ? 0.0 : 1.0;
}

const char* control_mode_name(ControlMode mode) {
  switch (mode) {
    case ControlMode::Balanced: return "balanced";
    case ControlMode::Prompt: return "prompt";
    case ControlMode::Control: return "control";
  }
  return "?";
}

const char* control_resize_name(ControlResize resize) {
  switch (resize) {
    case ControlResize::Stretch: return "stretch";
    case ControlResize::Crop: return "crop";
    case ControlResize::Fit: return "fit";
  }
  return "?";
}

namespace {

// The value of `values` that `name_of` names `name`; InvalidParameter `parameter` listing them otherwise.
template <typename Enum>
Enum parse_named(const std::string& name, std::initializer_list<Enum> values, const char* (*name_of)(Enum),
                 const char* parameter) {
  std::string known;
  size_t i = 0;
  for (const Enum value : values) {
    if (name == name_of(value)) return value;
    known += std::string(i == 0 ? "" : i + 1 == values.size() ? " or " : ", ") + name_of(value);
    ++i;
  }
  throw InvalidParameter(parameter, "'" + name + "' is not " + known);
}

}  // namespace

ResolvedControls validate_controls(const std::vector<ControlUnit>& units, const std::vector<fs::path>& dirs,
                                   const std::string& mode, const std::string& resize, bool guess_mode) {
  ResolvedControls controls;
  controls.mode = parse_named(mode, {ControlMode::Balanced, ControlMode::Prompt, ControlMode::Control},
                              control_mode_name, "control_mode");
  controls.resize = parse_named(resize, {ControlResize::Stretch, ControlResize::Crop, ControlResize::Fit},
                                control_resize_name, "control_resize");
  if (guess_mode && controls.mode != ControlMode::Balanced) {
    throw InvalidParameter("control_guess_mode", "is a control mode of its own: it cannot go with control mode '" + mode + "'");
  }
  controls.guess_mode = guess_mode;
  for (size_t i = 0; i < units.size(); ++i) {
    const auto& unit = units[i];
    if (!std::isfinite(unit.weight) || unit.weight < 0) {
      throw unit_error(i, "weight " + format_number(unit.weight) + " must be a finite number >= 0");
    }
    check_fraction(unit.start, "start", i);
    check_fraction(unit.end, "end", i);
    if (unit.start > unit.end) {
      throw unit_error(i, "start " + format_number(unit.start) + " is after end " + format_number(unit.end));
    }
    const auto& image = unit.image;
    if (!image.defined() || image.dim() != 3 || image.scalar_type() != at::kByte || image.size(0) < 1 ||
        image.size(1) < 1 || image.size(2) < 1 || image.size(2) > 4) {
      throw unit_error(i, "its control image is not an 8-bit picture");
    }
    ResolvedControlUnit resolved;
    resolved.path = find_controlnet(unit.model, dirs, i);
    resolved.name = model_name_for(resolved.path);
    resolved.module = std::string(unit.preprocessor.name());
    resolved.pixels = unit.preprocessor.kind == image::ControlPreprocessor::Kind::none ? image::to_rgb(image)
                                                                                      : unit.preprocessor.apply(image);
    resolved.weight = unit.weight;
    resolved.start = unit.start;
    resolved.end = unit.end;
    controls.units.push_back(std::move(resolved));
  }
  return controls;
}

at::Tensor resize_control_image(const at::Tensor& pixels, int width, int height, ControlResize resize) {
  const auto rgb = image::to_rgb(pixels);
  const int old_h = static_cast<int>(rgb.size(0)), old_w = static_cast<int>(rgb.size(1));
  if (resize == ControlResize::Stretch || (old_w == width && old_h == height)) return image::resize(rgb, width, height);
  // sd-webui-controlnet: k = max (crop) or min (fit) of the two side ratios, sides rounded.
  const double k_h = static_cast<double>(height) / old_h, k_w = static_cast<double>(width) / old_w;
  const double k = resize == ControlResize::Crop ? std::max(k_h, k_w) : std::min(k_h, k_w);
  const int new_w = std::max(1, static_cast<int>(std::lround(old_w * k)));
  const int new_h = std::max(1, static_cast<int>(std::lround(old_h * k)));
  const auto scaled = image::resize(rgb, new_w, new_h);
  if (resize == ControlResize::Crop) {
    const int top = std::max(0, (new_h - height) / 2), left = std::max(0, (new_w - width) / 2);
    return scaled.slice(0, top, top + height).slice(1, left, left + width).contiguous();
  }
  auto canvas = border_median(rgb).view({1, 1, 3}).expand({height, width, 3}).clone();
  const int top = std::max(0, (height - new_h) / 2), left = std::max(0, (width - new_w) / 2);
  const int rows = std::min(new_h, height), columns = std::min(new_w, width);
  canvas.slice(0, top, top + rows).slice(1, left, left + columns).copy_(scaled.slice(0, 0, rows).slice(1, 0, columns));
  return canvas;
}

void prepare_control_images(ResolvedControls& controls, int width, int height) {
  for (auto& unit : controls.units) {
    const auto pixels = resize_control_image(unit.pixels, width, height, controls.resize);
    // PNG / 255, NCHW: the nets read [0, 1], not the VAE's [-1, 1].
    unit.image = (pixels.permute({2, 0, 1}).unsqueeze(0).to(at::kFloat) / 255.0f).contiguous();
  }
}

}  // namespace diffuse::pipeline
