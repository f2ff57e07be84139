#include "image/resize.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <vector>

#include "util/error.h"
#include "util/strings.h"

namespace diffuse::image {

namespace {

// Pillow's fixed point: 32 bits less 8 for the value and 2 for coefficients above 1 or below 0.
constexpr int kPrecisionBits = 32 - 8 - 2;
constexpr double kLanczosSupport = 3.0;

double sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= M_PI;
  return std::sin(x) / x;
}

double lanczos(double x) { return -kLanczosSupport <= x && x < kLanczosSupport ? sinc(x) * sinc(x / 3) : 0.0; }

// One output position's taps: the first source pixel and a fixed-point weight per source pixel.
struct Taps {
  int first = 0;
  std::vector<int32_t> weights;
};

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for a whole-image box (in0 = 0, in1 = in_size):
// the same double arithmetic in the same order, so the rounded coefficients come out equal.
std::vector<Taps> lanczos_taps(int in_size, int out_size) {
  const double scale = static_cast<double>(static_cast<float>(in_size) - 0.0f) / out_size;
  const double filter_scale = std::max(scale, 1.0);
  const double support = kLanczosSupport * filter_scale;
  std::vector<Taps> taps(out_size);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filter_scale;
    const int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
    const int xmax = std::min(static_cast<int>(center + support + 0.5), in_size) - xmin;
    std::vector<double> k(std::max(xmax, 0));
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      k[x] = lanczos((x + xmin - center + 0.5) * ss);
      ww += k[x];
    }
    taps[xx].first = xmin;
    for (double w : k) {
      if (ww != 0.0) w /= ww;
      const double fixed = w * (1 << kPrecisionBits);
      taps[xx].weights.push_back(static_cast<int32_t>(w < 0 ? -0.5 + fixed : 0.5 + fixed));
    }
  }
  return taps;
}

uint8_t clip8(int64_t sum) { return static_cast<uint8_t>(std::clamp<int64_t>(sum >> kPrecisionBits, 0, 255)); }

// One separable pass along `axis` (1: columns of a row, 0: rows) of a [H, W, C] uint8 tensor.
at::Tensor lanczos_pass(const at::Tensor& in, int out_size, int axis) {
  const int64_t height = in.size(0), width = in.size(1), channels = in.size(2);
  const int in_size = static_cast<int>(axis == 1 ? width : height);
  const auto taps = lanczos_taps(in_size, out_size);
  auto out = at::empty({axis == 0 ? out_size : height, axis == 1 ? out_size : width, channels}, at::kByte);
  const uint8_t* src = in.data_ptr<uint8_t>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  const int64_t out_width = out.size(1);
  // Stride between neighbouring source samples along the axis, and between output lines across it.
  const int64_t step = axis == 1 ? channels : width * channels;
  const int64_t lines = axis == 1 ? height : width;
  for (int64_t line = 0; line < lines; ++line) {
    for (int o = 0; o < out_size; ++o) {
      const auto& t = taps[o];
      const int64_t base = axis == 1 ? (line * width + t.first) * channels : (int64_t{t.first} * width + line) * channels;
      const int64_t out_index = axis == 1 ? (line * out_width + o) * channels : (int64_t{o} * out_width + line) * channels;
      for (int64_t c = 0; c < channels; ++c) {
        int64_t sum = int64_t{1} << (kPrecisionBits - 1);
        for (size_t i = 0; i < t.weights.size(); ++i) sum += int64_t{src[base + static_cast<int64_t>(i) * step + c]} * t.weights[i];
        dst[out_index + c] = clip8(sum);
      }
    }
  }
  return out;
}

// Pillow's RGBA -> RGBa (and LA -> La): colour * alpha / 255 with its rounding trick.
void premultiply(at::Tensor& pixels) {
  const int64_t channels = pixels.size(2), count = pixels.size(0) * pixels.size(1);
  uint8_t* p = pixels.data_ptr<uint8_t>();
  for (int64_t i = 0; i < count; ++i, p += channels) {
    const unsigned alpha = p[channels - 1];
    for (int64_t c = 0; c + 1 < channels; ++c) {
      const unsigned t = p[c] * alpha + 128;
      p[c] = static_cast<uint8_t>(((t >> 8) + t) >> 8);
    }
  }
}

// RGBa -> RGBA: colour * 255 / alpha, truncated and clipped; alpha 0 and 255 leave the colour as is.
void unpremultiply(at::Tensor& pixels) {
  const int64_t channels = pixels.size(2), count = pixels.size(0) * pixels.size(1);
  uint8_t* p = pixels.data_ptr<uint8_t>();
  for (int64_t i = 0; i < count; ++i, p += channels) {
    const unsigned alpha = p[channels - 1];
    if (alpha == 0 || alpha == 255) continue;
    for (int64_t c = 0; c + 1 < channels; ++c) p[c] = static_cast<uint8_t>(std::min(255u, 255u * p[c] / alpha));
  }
}

at::Tensor lanczos_resize(const at::Tensor& pixels, int width, int height) {
  const bool alpha = pixels.size(2) == 2 || pixels.size(2) == 4;
  auto image = pixels.clone();
  if (alpha) premultiply(image);
  if (width != image.size(1)) image = lanczos_pass(image, width, 1);
  if (height != image.size(0)) image = lanczos_pass(image, height, 0);
  if (alpha) unpremultiply(image);
  return image;
}

// Pillow's ImagingScaleAffine: source coordinates accumulated in double from the first pixel's centre;
// a coordinate outside the source leaves the pixel 0 (it never is, but for rounding at the far edge).
std::vector<int> nearest_sources(int in_size, int out_size) {
  const double step = static_cast<double>(static_cast<float>(in_size) - 0.0f) / out_size;
  std::vector<int> sources(out_size);
  double position = step * 0.5;
  for (int o = 0; o < out_size; ++o) {
    const int source = position < 0.0 ? -1 : static_cast<int>(position);
    sources[o] = source < in_size ? source : -1;
    position += step;
  }
  return sources;
}

at::Tensor nearest_resize(const at::Tensor& pixels, int width, int height) {
  const int64_t channels = pixels.size(2), in_width = pixels.size(1);
  const auto columns = nearest_sources(static_cast<int>(in_width), width);
  const auto rows = nearest_sources(static_cast<int>(pixels.size(0)), height);
  auto out = at::zeros({height, width, channels}, at::kByte);
  const uint8_t* src = pixels.data_ptr<uint8_t>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  for (int y = 0; y < height; ++y) {
    if (rows[y] < 0) continue;
    for (int x = 0; x < width; ++x) {
      if (columns[x] < 0) continue;
      std::copy_n(src + (rows[y] * in_width + columns[x]) * channels, channels, dst + (int64_t{y} * width + x) * channels);
    }
  }
  return out;
}

}  // namespace

std::optional<ResampleFilter> resample_filter_named(const std::string& name) {
  const std::string lower = to_lower(name);
  if (lower == "nearest") return ResampleFilter::Nearest;
  if (lower == "lanczos") return ResampleFilter::Lanczos;
  return std::nullopt;
}

const char* resample_filter_name(ResampleFilter filter) {
  return filter == ResampleFilter::Nearest ? "nearest" : "lanczos";
}

at::Tensor resize_like_pillow(const at::Tensor& pixels, int width, int height, ResampleFilter filter) {
  if (pixels.dim() != 3 || pixels.scalar_type() != at::kByte || pixels.size(2) < 1 || pixels.size(2) > 4 ||
      pixels.size(0) < 1 || pixels.size(1) < 1) {
    throw Error("resize: expected uint8 pixels [H, W, 1..4] of at least one pixel, got " + c10::str(pixels.sizes()));
  }
  if (width < 1 || height < 1) {
    throw Error("resize: target size " + std::to_string(width) + "x" + std::to_string(height) + " has no pixels");
  }
  const auto source = pixels.contiguous();
  if (width == source.size(1) && height == source.size(0)) return source.clone();
  return filter == ResampleFilter::Lanczos ? lanczos_resize(source, width, height) : nearest_resize(source, width, height);
}

}  // namespace diffuse::image
