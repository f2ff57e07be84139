#include "pipeline/generation.h"

#include <ATen/CPUGeneratorImpl.h>

#include "image/tensor_image.h"

namespace diffuse::pipeline {

namespace {

// SDXL's text_time conditioning, one row per batch entry: original size (h, w), crop top-left
// (top, left), target size (h, w), as diffusers' _get_add_time_ids (the negative row the same).
at::Tensor sdxl_time_ids(const ResolvedRequest& request, int64_t rows) {
  const auto& original = *request.original_size;
  const auto& crop = *request.crop_coords;
  const auto& target = *request.target_size;
  const auto row = at::tensor({static_cast<float>(original.height), static_cast<float>(original.width),
                               static_cast<float>(crop.y), static_cast<float>(crop.x),
                               static_cast<float>(target.height), static_cast<float>(target.width)},
                              at::kFloat);
  return row.unsqueeze(0).repeat({rows, 1});
}

}  // namespace

GeneratedImage text_to_image(StableDiffusionModel& model, const ResolvedRequest& request, int index,
                             const ProgressCallback& progress) {
  torch::NoGradGuard no_grad;
  const uint64_t seed = request.seed_of(index);
  // diffusers skips the unconditional pass when guidance cannot change the prediction.
  const bool guided = request.cfg_scale > 1.0;
  // SDXL base: no negative prompt means zero conditioning, not the encoded "".
  const bool zero_negative = model.force_zeros_for_empty_prompt && request.negative_prompt.empty();
  PhaseTimer encoding(progress, Phase::Encode, guided && !zero_negative ? 2 : 1, index, request.batch_count);
  encoding.report(0);
  const auto cond = model.encode(request.prompt, request.clip_skip);
  encoding.report(1);
  PromptConditioning both = cond;
  if (guided) {
    const auto negative = zero_negative ? StableDiffusionModel::zeros_like(cond)
                                        : model.encode(request.negative_prompt, request.clip_skip);
    if (!zero_negative) encoding.report(2);
    // The CFG batch is [negative, prompt], as diffusers stacks it.
    both.context = at::cat({negative.context, cond.context});
    if (cond.pooled.defined()) both.pooled = at::cat({negative.pooled, cond.pooled});
  }
  // Conditioning in the UNet's type once, not on every step.
  const auto context = both.context.to(model.unet_dtype());
  std::optional<models::AddedConditioning> added;
  if (model.is_sdxl()) added = models::AddedConditioning{both.pooled.to(model.unet_dtype()),
                                                         sdxl_time_ids(request, both.context.size(0)).to(model.unet_dtype())};
  model.release_text_encoder_if_low_memory();

  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  const int factor = model.vae_scale_factor();
  const auto noise =
      at::randn({1, model.latent_channels(), request.height / factor, request.width / factor}, generator);

  const sampling::ModelFn predict = [&](const at::Tensor& input, double timestep) {
    const auto t = at::tensor({timestep}, at::kFloat);
    // The sampler's arithmetic stays fp32; only the UNet runs in the model's type (a no-op in fp32).
    const auto unet_input = input.to(model.unet_dtype());
    const auto* extra = added ? &*added : nullptr;
    if (!guided) return model.unet->forward(unet_input, t, context, extra).to(at::kFloat);
    const auto pair = model.unet->forward(at::cat({unet_input, unet_input}), t, context, extra).to(at::kFloat).chunk(2);
    return pair[0] + request.cfg_scale * (pair[1] - pair[0]);
  };
  PhaseTimer denoising(progress, Phase::Denoise, request.sampler.steps, index, request.batch_count);
  denoising.report(0);
  const sampling::StepCallback on_step = [&](const sampling::StepInfo& info) {
    denoising.report(info.step + 1, &info.latents, &info.denoised);
  };

  GeneratedImage result;
  result.index = index;
  result.seed = seed;
  result.latents = sampling::sample(predict, model.scheduler, request.sampler, noise, generator, on_step);
  PhaseTimer decoding(progress, Phase::Decode, model.decode_tile_count(result.latents), index, request.batch_count);
  decoding.report(0);
  const auto image = model.decode_latents(result.latents, [&](int done, int) { decoding.report(done); });
  result.pixels = image::to_uint8_image(image)[0];
  result.parameters = a1111_parameters(request, seed, model.name);
  return result;
}

void generate(StableDiffusionModel& model, const ResolvedRequest& request, const ProgressCallback& progress,
              const std::function<void(const GeneratedImage&)>& on_image) {
  for (int i = 0; i < request.batch_count; ++i) on_image(text_to_image(model, request, i, progress));
}

}  // namespace diffuse::pipeline
