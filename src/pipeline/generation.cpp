#include "pipeline/generation.h"

#include <chrono>
#include <cmath>
#include <map>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>

#include "image/tensor_image.h"
#include "util/error.h"

namespace diffuse::pipeline {

namespace {

void check_side(const char* flag, int value, int multiple) {
  if (value <= 0 || value % multiple != 0) {
    throw Error(std::string(flag) + ": " + std::to_string(value) + " is not a positive multiple of " +
                std::to_string(multiple));
  }
}

// Python's str(float) for the values people type: 7 -> "7", 7.5 -> "7.5".
std::string format_number(double value) {
  std::ostringstream out;
  out.precision(6);
  out << value;
  return out.str();
}

std::string a1111_sampler_name(const sampling::SamplerOptions& options) {
  static const std::map<std::string, std::string> names{
      {"euler", "Euler"},       {"euler_a", "Euler a"}, {"heun", "Heun"},
      {"lms", "LMS"},           {"ddim", "DDIM"},       {"dpm++2m", "DPM++ 2M"},
      {"dpm++2m_sde", "DPM++ 2M SDE"}, {"dpm2", "DPM2"},       {"dpm2_a", "DPM2 a"},
      {"plms", "PLMS"},         {"dpm++2s", "DPM++ 2S"}, {"dpm++2s_a", "DPM++ 2S a"},
      {"dpm++sde", "DPM++ SDE"}, {"unipc", "UniPC"},     {"deis", "DEIS"},
      {"lcm", "LCM"}};
  static const std::map<std::string, std::string> schedules{
      {"karras", " Karras"}, {"exponential", " Exponential"}, {"sgm_uniform", " SGM Uniform"}};
  auto it = names.find(options.sampler);
  std::string name = it != names.end() ? it->second : options.sampler;
  const auto schedule = schedules.find(options.schedule);
  if (schedule != schedules.end()) name += schedule->second;
  return name;
}

}  // namespace

GenerationParams resolve(const GenerationParams& params, const StableDiffusionModel& model) {
  GenerationParams resolved = params;
  if (resolved.width == 0) resolved.width = model.default_image_size();
  if (resolved.height == 0) resolved.height = model.default_image_size();
  // The UNet halves the latent once per level below the top; every level must divide evenly.
  const int grid = std::max(8, model.vae_scale_factor() << (model.unet->config.levels() - 1));
  check_side("--width", resolved.width, grid);
  check_side("--height", resolved.height, grid);
  if (!std::isfinite(resolved.cfg_scale) || resolved.cfg_scale < 0) {
    throw Error("--cfg-scale: " + format_number(resolved.cfg_scale) + " must be a finite number >= 0");
  }
  sampling::validate(resolved.sampler);
  return resolved;
}

GeneratedImage text_to_image(StableDiffusionModel& model, const GenerationParams& params,
                             const ProgressCallback& progress, const StepObserver& observer) {
  torch::NoGradGuard no_grad;
  // diffusers skips the unconditional pass when guidance cannot change the prediction.
  const bool guided = params.cfg_scale > 1.0;
  const auto cond = model.encode_prompt(params.prompt);
  // Conditioning in the UNet's type once, not on every step.
  const auto context =
      (guided ? at::cat({model.encode_prompt(params.negative_prompt), cond}) : cond).to(model.unet_dtype());
  model.release_text_encoder_if_low_memory();

  auto generator = at::make_generator<at::CPUGeneratorImpl>(params.seed);
  const int factor = model.vae_scale_factor();
  const auto noise = at::randn({1, model.latent_channels(), params.height / factor, params.width / factor}, generator);

  const sampling::ModelFn predict = [&](const at::Tensor& input, double timestep) {
    const auto t = at::tensor({timestep}, at::kFloat);
    // The sampler's arithmetic stays fp32; only the UNet runs in the model's type (a no-op in fp32).
    const auto unet_input = input.to(model.unet_dtype());
    if (!guided) return model.unet->forward(unet_input, t, context).to(at::kFloat);
    const auto both = model.unet->forward(at::cat({unet_input, unet_input}), t, context).to(at::kFloat).chunk(2);
    return both[0] + params.cfg_scale * (both[1] - both[0]);
  };
  auto last = std::chrono::steady_clock::now();
  const sampling::StepCallback on_step = [&](const sampling::StepInfo& info) {
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - last).count();
    last = now;
    if (progress) progress({info.step + 1, info.total, seconds});
    if (observer) observer({info.step + 1, info.total, info.latents, info.denoised});
  };

  GeneratedImage result;
  result.latents = sampling::sample(predict, model.scheduler, params.sampler, noise, generator, on_step);
  result.pixels = image::to_uint8_image(model.decode_latents(result.latents))[0];
  return result;
}

std::string a1111_parameters(const GenerationParams& params, const std::string& model_name) {
  std::ostringstream text;
  text << params.prompt << '\n';
  if (!params.negative_prompt.empty()) text << "Negative prompt: " << params.negative_prompt << '\n';
  text << "Steps: " << params.sampler.steps << ", Sampler: " << a1111_sampler_name(params.sampler)
       << ", CFG scale: " << format_number(params.cfg_scale) << ", Seed: " << params.seed
       << ", Size: " << params.width << 'x' << params.height << ", Model: " << model_name;
  if (params.sampler.eta != 0) text << ", Eta: " << format_number(params.sampler.eta);
  if (params.sampler.timestep_spacing) text << ", Timestep spacing: " << *params.sampler.timestep_spacing;
  return text.str();
}

}  // namespace diffuse::pipeline
