#pragma once
// The hires fix's part of a generation request (AUTOMATIC1111's two-pass txt2img): what people ask
// for, and what validate() and resolve() make of it. The run itself is pipeline/hires_fix.h.
#include <filesystem>
#include <optional>
#include <string>

#include "sampling/sampling.h"

namespace diffuse::pipeline {

// Parameter names, as InvalidParameter reports them: hires_scale, hires_width, hires_height,
// hires_upscaler, hires_denoise, hires_steps, hires_sampler, hires_prompt, hires_negative_prompt.
struct HiresFixRequest {
  double scale = 2;  // of the first pass's width and height, unless a size is given below
  // The result's size in pixels; 0: scale x the first pass's. One of the two alone keeps the first
  // pass's aspect ratio (AUTOMATIC1111's hr_resize_x / hr_resize_y).
  int width = 0;
  int height = 0;
  // latent (bilinear, no antialias) | latent-nearest | latent-bicubic: the first pass's latents
  // interpolated; lanczos | nearest: its decoded image resized as Pillow does; anything else: an
  // ESRGAN-family file (pipeline/upscale.h), then Lanczos to the exact size.
  std::string upscaler = "latent";
  double denoise = 0.7;  // the second pass's denoising strength, (0, 1]
  int steps = 0;         // second-pass steps that run; 0: the first pass's steps
  std::string sampler;   // empty: the first pass's
  std::optional<std::string> prompt;  // unset: the first pass's
  std::optional<std::string> negative_prompt;
};

enum class HiresUpscaler { LatentBilinear, LatentNearest, LatentBicubic, Lanczos, Nearest, Neural };

struct ResolvedHiresFix {
  bool sized = false;  // width or height asked for (the PNG says "Hires resize", not "Hires upscale")
  double scale = 2;
  int asked_width = 0, asked_height = 0;
  int width = 0, height = 0;  // the result's; filled by resolve()
  HiresUpscaler upscaler = HiresUpscaler::LatentBilinear;
  std::filesystem::path upscaler_file;  // HiresUpscaler::Neural
  double denoise = 0.7;
  int asked_steps = 0;  // as given (0: the first pass's)
  int steps = 0;        // steps that run
  // The second pass's sampler with AUTOMATIC1111's stretched schedule: steps = int(hires steps /
  // min(denoise, 0.999)), of which the last `steps` run (first_step = schedule steps - steps).
  sampling::SamplerOptions sampler;
  bool own_sampler = false;  // a hires sampler other than the first pass's was given
  int first_step = 0;
  std::optional<std::string> prompt, negative_prompt;  // as given, for the PNG's parameters
  std::string prompt_text, negative_text;  // what the second pass's text encoders read
  bool upscales_latents() const { return upscaler <= HiresUpscaler::LatentBicubic; }
};

}  // namespace diffuse::pipeline
