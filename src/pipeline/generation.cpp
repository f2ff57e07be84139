#include "pipeline/generation.h"

#include <ATen/CPUGeneratorImpl.h>

#include "image/tensor_image.h"
#include "pipeline/conditioning.h"
#include "pipeline/control.h"
#include "pipeline/hires_fix.h"

namespace diffuse::pipeline {

namespace {

// Where the sampler starts and what steers it besides the prompt, in diffusers' draw order.
struct RunStart {
  at::Tensor latents;       // at the level of step first_step, in the sampler's frame
  at::Tensor unet_extra;    // inpainting models: [mask, masked-image latents], concatenated to the input
  sampling::StepHook after_step;  // inpainting with an ordinary UNet: the blend outside the mask
};

RunStart prepare_start(StableDiffusionModel& model, const ResolvedRequest& request, at::Generator& generator) {
  const int factor = model.vae_scale_factor();
  const std::vector<int64_t> shape{1, model.latent_channels(), request.height / factor, request.width / factor};
  const auto& options = request.sampler;
  RunStart start;
  if (request.init_latents.defined()) {
    const auto noise = at::randn(shape, generator);
    start.latents = sampling::add_noise(model.scheduler, options, request.init_latents, noise, request.first_step);
    return start;
  }
  const SourceImage& source = request.source;
  const bool inpainting_model = model.is_inpainting();
  if (!request.has_init_image()) {
    const auto noise = at::randn(shape, generator);
    const double sigma = sampling::make_schedule(model.scheduler, options).init_noise_sigma;
    start.latents = sigma == 1.0 ? noise : noise * static_cast<float>(sigma);
    if (inpainting_model) {
      // Text to image on an inpainting model: everything masked, the masked image all grey (0 in
      // [-1, 1]), its latents the distribution's mean (AUTOMATIC1111's txt2img conditioning).
      const auto grey = at::zeros({1, 3, request.height, request.width}, at::kFloat);
      start.unet_extra = at::cat({at::ones({1, 1, shape[2], shape[3]}), model.encode_image(grey, nullptr)}, 1);
    }
    return start;
  }

  const bool repaint_all = request.strength == 1.0;
  const bool masked = source.mask.defined();
  // diffusers encodes the init image unless the run starts from pure noise and nothing needs it
  // later (an inpainting model at strength 1).
  at::Tensor image_latents;
  if (!(masked && repaint_all && inpainting_model)) image_latents = model.encode_image(source.image, &generator);
  const auto noise = at::randn(shape, generator);
  if (masked && repaint_all) {
    const double sigma = sampling::make_schedule(model.scheduler, options).init_noise_sigma;
    start.latents = sigma == 1.0 ? noise : noise * static_cast<float>(sigma);
  } else {
    start.latents = sampling::add_noise(model.scheduler, options, image_latents, noise, request.first_step);
  }
  if (!masked) return start;

  const at::Tensor mask_latents = at::upsample_nearest2d(source.mask, {shape[2], shape[3]});
  // Drawn by every inpainting run, even those whose UNet never reads it, as diffusers does.
  const at::Tensor masked_image = source.image * (source.mask < 0.5f);
  const at::Tensor masked_latents = model.encode_image(masked_image, &generator);
  if (inpainting_model) {
    start.unet_extra = at::cat({mask_latents, masked_latents}, 1);
  } else {
    const auto& config = model.scheduler;
    start.after_step = [&config, &options, image_latents, noise, mask_latents](int step, const at::Tensor& latents) {
      const at::Tensor kept = sampling::add_noise(config, options, image_latents, noise, step + 1);
      return (1 - mask_latents) * kept + mask_latents * latents;
    };
  }
  return start;
}

// The generated pixels inside the mask, the init image's outside, blended over the blurred edge
// (AUTOMATIC1111's overlay), so what was kept is kept exactly.
at::Tensor paste_over_source(const at::Tensor& generated, const SourceImage& source) {
  const at::Tensor alpha = source.paste_mask.unsqueeze(2);
  const at::Tensor mixed = generated.to(at::kFloat) * alpha + source.pixels.to(at::kFloat) * (1 - alpha);
  return mixed.round().clamp(0, 255).to(at::kByte).contiguous();
}

}  // namespace

GeneratedImage generate_image(StableDiffusionModel& model, const ResolvedRequest& request, int index,
                              const ProgressCallback& progress) {
  torch::NoGradGuard no_grad;
  const uint64_t seed = request.seed_of(index);
  model.set_loras(request.loras);
  // The nets are loaded and checked against the model before any prompt is encoded.
  ControlNetRunner control(model, request);
  StepConditioning conditioning(model, request, index, progress);
  int step = 0;  // of this run, for the prompt schedules
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  const RunStart start = prepare_start(model, request, generator);
  const at::Tensor unet_extra = start.unet_extra.defined() ? start.unet_extra.to(model.unet_dtype()) : at::Tensor();
  // An LCM UNet reads the guidance scale as an embedding added to its timestep embedding.
  const at::Tensor timestep_cond =
      model.has_guidance_embedding()
          ? models::guidance_scale_embedding(request.cfg_scale, model.unet->config.time_cond_proj_dim).to(model.unet_dtype())
          : at::Tensor();

  const int steps_run = request.sampler.steps - request.first_step;
  const sampling::ModelFn predict = [&](const at::Tensor& input, double timestep) {
    const auto t = at::tensor({timestep}, at::kFloat);
    // The sampler's arithmetic stays fp32; only the UNet runs in the model's type (a no-op in fp32).
    const auto latents = input.to(model.unet_dtype());
    const auto& step_conditioning = conditioning.at_step(step);
    const auto* extra = step_conditioning.added ? &*step_conditioning.added : nullptr;
    const bool guided = conditioning.guided();
    const auto batch = guided ? at::cat({latents, latents}) : latents;
    // The ControlNets read the latents alone, never an inpainting UNet's extra channels.
    const auto residuals = control.empty() ? std::nullopt
                                           : control.residuals(step, steps_run, batch, t, step_conditioning, guided);
    const auto unet_input = unet_extra.defined() ? at::cat({batch, unet_extra.expand({batch.size(0), -1, -1, -1})}, 1)
                                                 : batch;
    const auto output = model.unet->forward(unet_input, t, step_conditioning.context, extra, timestep_cond,
                                            residuals ? &*residuals : nullptr)
                            .to(at::kFloat);
    if (!guided) return output;
    const auto pair = output.chunk(2);
    return pair[0] + request.cfg_scale * (pair[1] - pair[0]);
  };
  // With a hires fix one Denoise phase covers both passes.
  const int steps_reported = steps_run + (request.hires ? request.hires->steps : 0);
  PhaseTimer denoising(progress, Phase::Denoise, steps_reported, index, request.batch_count);
  denoising.report(0);
  const sampling::StepCallback on_step = [&](const sampling::StepInfo& info) {
    step = info.step + 1;
    denoising.report(info.step + 1, &info.latents, &info.denoised);
  };

  GeneratedImage result;
  result.index = index;
  result.seed = seed;
  result.latents = sampling::sample_from(predict, model.scheduler, request.sampler, request.first_step, start.latents,
                                         generator, on_step, start.after_step);
  if (request.hires) return run_hires_pass(model, request, index, result.latents, progress);
  PhaseTimer decoding(progress, Phase::Decode, model.decode_tile_count(result.latents), index, request.batch_count);
  decoding.report(0);
  const auto image = model.decode_latents(result.latents, [&](int done, int) { decoding.report(done); });
  result.pixels = image::to_uint8_image(image)[0];
  if (request.inpainting()) result.pixels = paste_over_source(result.pixels, request.source);
  result.parameters = a1111_parameters(request, seed, model.name);
  return result;
}

void generate(StableDiffusionModel& model, const ResolvedRequest& request, const ProgressCallback& progress,
              const std::function<void(const GeneratedImage&)>& on_image) {
  for (int i = 0; i < request.batch_count; ++i) on_image(generate_image(model, request, i, progress));
}

}  // namespace diffuse::pipeline
