#pragma once
// AUTOMATIC1111's hires fix inside one generation request: the first pass draws at width x height;
// its result is enlarged (latent upscalers interpolate its latents; image upscalers decode it,
// truncate to 8 bits as AUTOMATIC1111 does, resize, and the second pass encodes that with a VAE
// sample); then an img2img pass repaints it at the larger size. That pass runs exactly the hires
// steps: the last ones of a schedule stretched to int(steps / min(denoise, 0.999)) steps, from a
// fresh generator seeded with the image's seed (AUTOMATIC1111 re-seeds for it).
#include <string>

#include <ATen/ATen.h>

#include "pipeline/generation.h"
#include "pipeline/request.h"

namespace diffuse::pipeline {

// Part of validate(): checks request.hires (InvalidParameter naming hires_*) and fills resolved.hires;
// `resolved`'s sampler options are already valid.
void validate_hires_fix(const GenerationRequest& request, ResolvedRequest& resolved);
// Part of resolve(), after the first pass's size is known: the result's size (multiples of `grid`)
// and the second pass's schedule against the model's.
void resolve_hires_fix(ResolvedRequest& resolved, const StableDiffusionModel& model, int grid);

// The first pass's latents [1, C, h, w] interpolated to [1, C, height, width] as
// torch.nn.functional.interpolate does for the latent upscaler (no antialias, align_corners unset).
at::Tensor upscale_latents(const at::Tensor& latents, HiresUpscaler upscaler, int64_t height, int64_t width);
// Decoded pixels [1, 3, H, W] in [-1, 1] to bytes as AUTOMATIC1111 saves a first pass: 255 x
// clamp((x + 1) / 2, 0, 1) in float32, truncated (not rounded, unlike diffusers' PNGs).
at::Tensor truncated_bytes(const at::Tensor& decoded);

// Image upscalers: the first pass's latents decoded, truncated to bytes and enlarged to the hires
// size (an ESRGAN file up to three times until it reaches it, then Lanczos to the exact size, as
// AUTOMATIC1111's Upscaler.upscale does), uint8 [H, W, 3]. Decode and network progress go to `progress`.
at::Tensor upscale_first_pass_image(StableDiffusionModel& model, const ResolvedRequest& request, int index,
                                    const at::Tensor& first_latents, const ProgressCallback& progress = {});

// The second pass of image `index`, from the first pass's final latents: the finished image, its
// parameters those of the whole request. `progress`: the Denoise phase counts on from the first
// pass's steps, so one phase covers both passes.
GeneratedImage run_hires_pass(StableDiffusionModel& model, const ResolvedRequest& request, int index,
                              const at::Tensor& first_latents, const ProgressCallback& progress);

// What a1111_parameters() adds for the hires fix, as AUTOMATIC1111 writes it:
// ", Denoising strength: 0.7, Hires upscale: 2, Hires steps: 10, Hires upscaler: Latent".
std::string hires_parameters(const ResolvedHiresFix& hires);
// AUTOMATIC1111's name of the upscaler: "Latent", "Latent (nearest)", "Latent (bicubic)", "Lanczos",
// "Nearest", or the file's stem for a network (as its upscaler list shows models).
std::string a1111_upscaler_name(const ResolvedHiresFix& hires);

}  // namespace diffuse::pipeline
