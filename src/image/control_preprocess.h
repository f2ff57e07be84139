// ControlNet preprocessors that need no network: what turns a user's picture into the map a
// ControlNet was trained on, computed as AUTOMATIC1111's sd-webui-controlnet annotators compute it
// (canny through OpenCV's own cv::Canny, so edges match pixel for pixel), and the inpaint control's
// condition as diffusers makes it. Pixels are uint8 [H, W, C] as read_png() gives them.
#pragma once
#include <string>
#include <string_view>

#include <ATen/ATen.h>

namespace diffuse::image {

// One preprocessor and its parameters, parsed once from text such as "canny", "canny:100:200",
// "invert", "threshold:127", "tile:2" or "none" (every name and parameter comes from one table in
// control_preprocess.cpp). Parameters not given keep the defaults below, AUTOMATIC1111's.
struct ControlPreprocessor {
  enum class Kind { none, canny, invert, threshold, tile };

  Kind kind = Kind::none;
  double canny_low = 100;       // cv::Canny's thresholds; low > high are swapped, as OpenCV does
  double canny_high = 200;
  double threshold_level = 127;  // threshold: white where every channel is above it
  double tile_downsample = 1;    // tile: shrink by this factor (below 1.1: unchanged)

  // Throws diffuse::Error: "control preprocessor: unknown 'xyz' (known: canny, invert, threshold,
  // tile, none)", "canny: low threshold must be a number, not 'a'", and so on.
  static ControlPreprocessor parse(std::string_view spec);
  // The name alone ("canny").
  std::string_view name() const;
  // The full form parse() reads back: "canny:100:200", "invert".
  std::string to_string() const;

  // The control map: uint8 [H', W', 3] (the same size as the input except for tile). Every
  // preprocessor first applies annotator_rgb(); the map of canny and threshold is 0 or 255 with
  // the same value in R, G and B. Throws diffuse::Error for pixels that are not uint8 [H, W, 1-4].
  at::Tensor apply(const at::Tensor& pixels) const;
};

// The annotators' HWC3: grey repeated into R, G and B; RGB unchanged; an alpha channel composited
// over white in float32 (uint8(clip(rgb * a/255 + 255 * (1 - a/255))), truncated), where PIL's
// convert("RGB") would drop it instead.
at::Tensor annotator_rgb(const at::Tensor& pixels);

// diffusers' make_inpaint_condition for the inpaint ControlNet: the image as RGB float32 in [0, 1]
// (value / 255), and every pixel whose mask is above 0.5 (mask converted to grey as PIL's "L",
// then / 255) set to -1 in all channels. Returns float32 [1, 3, H, W]. Throws diffuse::Error when
// the mask's size differs from the image's.
at::Tensor inpaint_condition(const at::Tensor& pixels, const at::Tensor& mask_pixels);

}  // namespace diffuse::image
