// img2img, inpainting and outpainting inputs: the checks that need no model, the run's size from
// the init image, and the image and masks every image of the request starts from.
#pragma once
#include "pipeline/request.h"

namespace diffuse::pipeline {

class StableDiffusionModel;

// Part of validate(): checks init_image, strength, mask, mask_blur and outpaint (InvalidParameter
// naming the field) and copies them into `resolved`, whose sampler options are already valid.
void validate_source(const GenerationRequest& request, ResolvedRequest& resolved);

// Part of resolve(), before the size checks: with an init image, sizes left at 0 come from it (and
// from the outpaint padding, which grows on the right and bottom to reach the model's latent grid
// `grid`); a width or height that is not a multiple of the grid is rounded down, with a warning.
void size_from_source(ResolvedRequest& resolved, int grid);

// Part of resolve(), after the size checks: fills resolved.source at resolved.width x height.
// `repaints_everything`: an inpainting model asked for img2img without a mask repaints it all.
void prepare_source(ResolvedRequest& resolved, bool repaints_everything);

}  // namespace diffuse::pipeline
