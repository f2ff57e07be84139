#pragma once
// A resolved request in, images out, one after another for a batch: text to image, img2img,
// inpainting and outpainting, as the request's init image, mask and outpaint say.
#include <functional>

#include <ATen/ATen.h>

#include "pipeline/model.h"
#include "pipeline/progress.h"
#include "pipeline/request.h"

namespace diffuse::pipeline {

struct GeneratedImage {
  int index = 0;       // in the batch
  uint64_t seed = 0;   // request.seed_of(index)
  at::Tensor latents;  // [1, C, h, w], what the VAE decoded (before 1/scaling_factor)
  at::Tensor pixels;   // uint8 [H, W, 3]; inpainting: pasted over the init image outside the (blurred) mask
  std::string parameters;  // a1111_parameters() for this image
};

// One image of the request: image `index` of its batch, from seed request.seed_of(index). Every
// random draw comes from one torch CPU generator seeded with that seed, in diffusers' order (for
// img2img the init image's VAE sample, then the noise; inpainting adds the masked image's VAE
// sample), so a seed reproduces the reference image. `request` must be resolved for `model`.
GeneratedImage generate_image(StableDiffusionModel& model, const ResolvedRequest& request, int index = 0,
                             const ProgressCallback& progress = {});

// Every image of the batch, in order; `on_image` gets each as soon as it is done (to write it or
// send it), so a long batch keeps what it made if it is cancelled part-way.
void generate(StableDiffusionModel& model, const ResolvedRequest& request, const ProgressCallback& progress,
              const std::function<void(const GeneratedImage&)>& on_image);

}  // namespace diffuse::pipeline
