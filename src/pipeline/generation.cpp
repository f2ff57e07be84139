#include "pipeline/generation.h"

#include <ATen/CPUGeneratorImpl.h>

#include "image/tensor_image.h"

namespace diffuse::pipeline {

GeneratedImage text_to_image(StableDiffusionModel& model, const ResolvedRequest& request, int index,
                             const ProgressCallback& progress) {
  torch::NoGradGuard no_grad;
  const uint64_t seed = request.seed_of(index);
  // diffusers skips the unconditional pass when guidance cannot change the prediction.
  const bool guided = request.cfg_scale > 1.0;
  PhaseTimer encoding(progress, Phase::Encode, guided ? 2 : 1, index, request.batch_count);
  encoding.report(0);
  const auto cond = model.encode_prompt(request.prompt);
  encoding.report(1);
  at::Tensor context = cond;
  if (guided) {
    context = at::cat({model.encode_prompt(request.negative_prompt), cond});
    encoding.report(2);
  }
  // Conditioning in the UNet's type once, not on every step.
  context = context.to(model.unet_dtype());
  model.release_text_encoder_if_low_memory();

  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  const int factor = model.vae_scale_factor();
  const auto noise =
      at::randn({1, model.latent_channels(), request.height / factor, request.width / factor}, generator);

  const sampling::ModelFn predict = [&](const at::Tensor& input, double timestep) {
    const auto t = at::tensor({timestep}, at::kFloat);
    // The sampler's arithmetic stays fp32; only the UNet runs in the model's type (a no-op in fp32).
    const auto unet_input = input.to(model.unet_dtype());
    if (!guided) return model.unet->forward(unet_input, t, context).to(at::kFloat);
    const auto both = model.unet->forward(at::cat({unet_input, unet_input}), t, context).to(at::kFloat).chunk(2);
    return both[0] + request.cfg_scale * (both[1] - both[0]);
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
