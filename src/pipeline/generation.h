#pragma once
// Text to image: prompt and seed in, latents and 8-bit pixels out.
#include <cstdint>
#include <functional>
#include <string>

#include <ATen/ATen.h>

#include "pipeline/model.h"
#include "sampling/sampling.h"

namespace diffuse::pipeline {

struct GenerationParams {
  std::string prompt;
  std::string negative_prompt;  // empty: the unconditional prompt "", as diffusers uses
  sampling::SamplerOptions sampler;
  double cfg_scale = 7.5;
  uint64_t seed = 42;
  int width = 0;   // 0: the model's default size
  int height = 0;
};

// Fills the model's defaults (image size) and rejects what cannot run, naming the parameter:
// width/height not a positive multiple of 8 (and of the model's latent grid), steps < 1,
// unknown sampler or schedule, a negative or non-finite CFG scale.
GenerationParams resolve(const GenerationParams& params, const StableDiffusionModel& model);

struct Progress {
  int step;     // 1-based
  int total;
  double seconds_per_step;
};
using ProgressCallback = std::function<void(const Progress&)>;

// What the sampler holds after each step, for tools that show the denoising (explain/): the noisy
// latents and the model's predicted clean latents (x0), both in the sampler's scaled latent space.
struct StepLatents {
  int step;  // 1-based
  int total;
  const at::Tensor& latents;
  const at::Tensor& denoised;
};
using StepObserver = std::function<void(const StepLatents&)>;

struct GeneratedImage {
  at::Tensor latents;  // [1, C, h, w], what the VAE decoded (before 1/scaling_factor)
  at::Tensor pixels;   // uint8 [H, W, 3]
};

// `params` must be resolved. Every random draw comes from one torch CPU generator seeded with
// params.seed, in diffusers' order, so a seed reproduces the reference image.
GeneratedImage text_to_image(StableDiffusionModel& model, const GenerationParams& params,
                             const ProgressCallback& progress = {}, const StepObserver& observer = {});

// The "parameters" text AUTOMATIC1111's web UI stores in its PNGs, which many tools read back.
std::string a1111_parameters(const GenerationParams& params, const std::string& model_name);

}  // namespace diffuse::pipeline
