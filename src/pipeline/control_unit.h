#pragma once
// ControlNet units as a generation request carries them: which net, which control image, how
// strongly and over which part of the steps; checked once (validate_controls) and prepared at the
// run's size (prepare_control_images). Errors are diffuse::InvalidParameter naming `control`
// ("unit 2: ..."), `control_mode`, `control_resize` or `control_guess_mode`.
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "image/control_preprocess.h"

namespace diffuse::pipeline {

// One unit, as the front ends fill it in.
struct ControlUnit {
  std::string model;   // a ControlNet file or diffusers folder, or a name looked up in controlnet_dirs
  at::Tensor image;    // uint8 [H, W, C] as read_png() gives it (grey and alpha: as for init images)
  double weight = 1;   // diffusers' conditioning scale: >= 0
  double start = 0;    // fractions of the steps run: the unit steers steps i with start <= i/N and
  double end = 1;      // (i+1)/N <= end (diffusers' control_guidance_start / _end)
  // AUTOMATIC1111's "Module": turns the image into the net's control map (canny edges...) before it
  // is resized to the run's size; none: the image is the map already.
  image::ControlPreprocessor preprocessor;
};

// AUTOMATIC1111's control modes. Balanced: the residuals in both halves of the CFG batch. Prompt
// ("My prompt is more important"): each residual k of n weighted 0.825^(n-1-k), the shallow ones
// least. Control ("ControlNet is more important"): those weights, and the residuals in the
// conditional half only, so CFG pushes towards the control.
enum class ControlMode { Balanced, Prompt, Control };
// A control image of another size than the run's. Stretch ("Just Resize"): to the size, whatever
// the aspect. Crop ("Crop and Resize"): scaled to cover it, centre cropped. Fit ("Resize and Fill"):
// scaled to fit inside it, centred on the median colour of its border.
enum class ControlResize { Stretch, Crop, Fit };

struct ResolvedControlUnit {
  std::filesystem::path path;  // the file or folder found
  std::string name;            // its name, for the PNG's parameters
  std::string module = "none";  // the preprocessor, as the PNG's parameters name it
  at::Tensor pixels;           // uint8 [H, W, 3]: the control map (the image, preprocessed)
  at::Tensor image;            // float [1, 3, height, width] in [0, 1]: prepare_control_images() fills it
  double weight = 1;
  double start = 0;
  double end = 1;
  // diffusers' controlnet_keep for step i of n (0 or 1): 1 - (i/n < start or (i+1)/n > end).
  double keep(int step, int steps) const;
};

struct ResolvedControls {
  std::vector<ResolvedControlUnit> units;
  ControlMode mode = ControlMode::Balanced;
  ControlResize resize = ControlResize::Stretch;
  // diffusers' guess mode: with CFG the nets see the conditional half only (zeros for the other),
  // residual k of n weighted logspace(-1, 0, n)[k].
  bool guess_mode = false;
  bool empty() const { return units.empty(); }
};

// Finds each unit's net (a path as given, or NAME, NAME.safetensors / .pth / .pt / .ckpt or a folder
// NAME in `dirs`) and checks weights, start/end, images and the mode names.
ResolvedControls validate_controls(const std::vector<ControlUnit>& units, const std::vector<std::filesystem::path>& dirs,
                                   const std::string& mode, const std::string& resize, bool guess_mode);
// Each unit's image at width x height, as the nets read it.
void prepare_control_images(ResolvedControls& controls, int width, int height);
// uint8 [H, W, C] -> uint8 [height, width, 3] by `resize`'s rule (exposed for tests).
at::Tensor resize_control_image(const at::Tensor& pixels, int width, int height, ControlResize resize);

const char* control_mode_name(ControlMode mode);      // "balanced", "prompt", "control"
const char* control_resize_name(ControlResize resize);  // "stretch", "crop", "fit"

}  // namespace diffuse::pipeline
