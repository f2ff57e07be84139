#include "pipeline/hires_fix.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <sstream>

#include "image/resize.h"
#include "pipeline/model.h"
#include "pipeline/upscale.h"
#include "text/extra_networks.h"
#include "text/prompt_attention.h"
#include "text/prompt_schedule.h"
#include "util/error.h"
#include "util/format.h"
#include "util/strings.h"

namespace diffuse::pipeline {

namespace {

constexpr double kMaxScale = 8;
// AUTOMATIC1111 caps the strength below 1 when it stretches the schedule, so that a denoise of 1
// still leaves the last step of a longer schedule out.
constexpr double kMaxScheduleStrength = 0.999;
// ESRGAN passes before the Lanczos step to the exact size (AUTOMATIC1111's Upscaler.upscale loop).
constexpr int kMaxNetworkPasses = 3;
// Tiles bound the network's memory by the tile, not the enlarged image.
constexpr int kNetworkTile = 192;

// Our names and AUTOMATIC1111's (which the server receives), any case.
std::optional<HiresUpscaler> builtin_upscaler(const std::string& name) {
  static const std::vector<std::pair<std::string, HiresUpscaler>> names{
      {"latent", HiresUpscaler::LatentBilinear},        {"latent-nearest", HiresUpscaler::LatentNearest},
      {"latent (nearest)", HiresUpscaler::LatentNearest}, {"latent-bicubic", HiresUpscaler::LatentBicubic},
      {"latent (bicubic)", HiresUpscaler::LatentBicubic}, {"lanczos", HiresUpscaler::Lanczos},
      {"nearest", HiresUpscaler::Nearest}};
  const std::string key = to_lower(name);
  for (const auto& [known, upscaler] : names) {
    if (key == known) return upscaler;
  }
  return std::nullopt;
}

// A hires prompt goes through the same prompt language as the first pass's; LoRAs are the whole
// request's, so a tag here would silently mean nothing.
std::string checked_hires_prompt(const char* parameter, const std::string& prompt, bool prompt_syntax, int steps) {
  if (!prompt_syntax) return prompt;
  const auto taken = text::take_extra_network_tags(prompt);
  if (!taken.tags.empty()) {
    throw InvalidParameter(parameter, "extra-network tags (<lora:...>) belong in the first pass's prompt, which "
                                      "loads them for both passes");
  }
  try {
    for (const auto& entry : text::prompt_schedule(prompt, steps)) text::parse_prompt_attention(entry.text);
  } catch (const InvalidParameter& e) {
    throw InvalidParameter(parameter, e.problem());
  }
  return prompt;
}

void validate_hires_sampler(const HiresFixRequest& asked, const ResolvedRequest& resolved, ResolvedHiresFix& hires) {
  hires.sampler = resolved.sampler;
  hires.own_sampler = !asked.sampler.empty();
  try {
    if (hires.own_sampler) hires.sampler.sampler = asked.sampler;
    hires.steps = asked.steps == 0 ? resolved.sampler.steps : asked.steps;
    hires.sampler.steps = static_cast<int>(hires.steps / std::min(hires.denoise, kMaxScheduleStrength));
    hires.first_step = hires.sampler.steps - hires.steps;
    sampling::validate(hires.sampler);
  } catch (const InvalidParameter& e) {
    // A sampler that refuses the first pass's eta or schedule is the hires sampler's problem.
    throw InvalidParameter(e.parameter() == "steps" ? "hires_steps" : "hires_sampler", e.problem());
  }
}

// AUTOMATIC1111's quote() for infotext values: as they are unless a comma, colon or newline would
// break the "key: value, " list; then a JSON string.
std::string quoted(const std::string& value) {
  if (value.find_first_of(",:\n") == std::string::npos) return value;
  std::string text = "\"";
  for (const char c : value) {
    if (c == '"' || c == '\\') text += '\\';
    if (c == '\n') {
      text += "\\n";
      continue;
    }
    text += c;
  }
  return text + "\"";
}

}  // namespace

void validate_hires_fix(const GenerationRequest& request, ResolvedRequest& resolved) {
  if (!request.hires) return;
  const HiresFixRequest& asked = *request.hires;
  if (request.init_image.defined()) {
    throw InvalidParameter("hires_upscaler", "the hires fix is a second pass of text to image; img2img has none");
  }
  ResolvedHiresFix hires;
  hires.sized = asked.width != 0 || asked.height != 0;
  for (const auto& [parameter, side] : {std::pair{"hires_width", asked.width}, std::pair{"hires_height", asked.height}}) {
    if (side < 0) throw InvalidParameter(parameter, std::to_string(side) + " must be 0 (from the scale) or more");
  }
  if (!hires.sized && (!std::isfinite(asked.scale) || asked.scale < 1 || asked.scale > kMaxScale)) {
    throw InvalidParameter("hires_scale", format_number(asked.scale) + " is outside 1.." + format_number(kMaxScale));
  }
  hires.scale = asked.scale;
  hires.asked_width = asked.width;
  hires.asked_height = asked.height;
  if (const auto builtin = builtin_upscaler(asked.upscaler)) {
    hires.upscaler = *builtin;
  } else if (std::filesystem::is_regular_file(asked.upscaler)) {
    hires.upscaler = HiresUpscaler::Neural;
    hires.upscaler_file = asked.upscaler;
  } else {
    throw InvalidParameter("hires_upscaler", "'" + asked.upscaler + "' is not one of latent, latent-nearest, "
                                             "latent-bicubic, lanczos, nearest, nor an upscaler file");
  }
  if (!std::isfinite(asked.denoise) || asked.denoise <= 0 || asked.denoise > 1) {
    throw InvalidParameter("hires_denoise", format_number(asked.denoise) + " must be more than 0 and at most 1");
  }
  hires.denoise = asked.denoise;
  if (asked.steps < 0) throw InvalidParameter("hires_steps", std::to_string(asked.steps) + " must be 0 (the first pass's) or more");
  hires.asked_steps = asked.steps;
  validate_hires_sampler(asked, resolved, hires);
  hires.prompt = asked.prompt;
  hires.negative_prompt = asked.negative_prompt;
  hires.prompt_text = asked.prompt ? checked_hires_prompt("hires_prompt", *asked.prompt, request.prompt_syntax, hires.sampler.steps)
                                   : resolved.prompt_text;
  hires.negative_text = asked.negative_prompt ? checked_hires_prompt("hires_negative_prompt", *asked.negative_prompt,
                                                                     request.prompt_syntax, hires.sampler.steps)
                                              : resolved.negative_text;
  resolved.hires = std::move(hires);
}

void resolve_hires_fix(ResolvedRequest& resolved, const StableDiffusionModel& model, int grid) {
  if (!resolved.hires) return;
  ResolvedHiresFix& hires = *resolved.hires;
  const char* width_parameter = hires.sized ? "hires_width" : "hires_scale";
  const char* height_parameter = hires.sized ? "hires_height" : "hires_scale";
  if (!hires.sized) {
    hires.width = static_cast<int>(resolved.width * hires.scale);
    hires.height = static_cast<int>(resolved.height * hires.scale);
  } else {
    // One side alone keeps the first pass's aspect ratio (AUTOMATIC1111's integer division).
    hires.width = hires.asked_width != 0 ? hires.asked_width : hires.asked_height * resolved.width / resolved.height;
    hires.height = hires.asked_height != 0 ? hires.asked_height : hires.asked_width * resolved.height / resolved.width;
  }
  for (const auto& [parameter, side] : {std::pair{width_parameter, hires.width}, std::pair{height_parameter, hires.height}}) {
    if (side <= 0 || side % grid != 0) {
      throw InvalidParameter(parameter, "gives " + std::to_string(hires.width) + "x" + std::to_string(hires.height) +
                                            ", whose sides must be positive multiples of " + std::to_string(grid) +
                                            " for this model");
    }
  }
  try {
    sampling::validate_for(hires.sampler, model.scheduler);
  } catch (const InvalidParameter& e) {
    throw InvalidParameter("hires_steps", e.problem() + " (the second pass's schedule is int(hires steps / denoise) steps)");
  }
}

at::Tensor upscale_latents(const at::Tensor& latents, HiresUpscaler upscaler, int64_t height, int64_t width) {
  const std::vector<int64_t> size{height, width};
  switch (upscaler) {
    case HiresUpscaler::LatentBilinear:
      return at::upsample_bilinear2d(latents, size, /*align_corners=*/false);
    case HiresUpscaler::LatentNearest:
      return at::upsample_nearest2d(latents, size);
    case HiresUpscaler::LatentBicubic:
      return at::upsample_bicubic2d(latents, size, /*align_corners=*/false);
    default:
      throw Error("upscale_latents: not a latent upscaler");
  }
}

at::Tensor truncated_bytes(const at::Tensor& decoded) {
  const at::Tensor unit = ((decoded.detach().to(at::kFloat) + 1.0f) / 2.0f).clamp(0, 1);
  // Casting non-negative floats to uint8 truncates, as numpy's astype(np.uint8) does.
  return (at::nan_to_num(unit, 0.0) * 255.0f).to(at::kByte)[0].permute({1, 2, 0}).contiguous();
}

at::Tensor upscale_first_pass_image(StableDiffusionModel& model, const ResolvedRequest& request, int index,
                                    const at::Tensor& first_latents, const ProgressCallback& progress) {
  const ResolvedHiresFix& hires = *request.hires;
  PhaseTimer decoding(progress, Phase::Decode, model.decode_tile_count(first_latents), index, request.batch_count);
  decoding.report(0);
  at::Tensor pixels = truncated_bytes(model.decode_latents(first_latents, [&](int done, int) { decoding.report(done); }));
  if (hires.upscaler == HiresUpscaler::Neural) {
    auto network = NeuralUpscaler::load(hires.upscaler_file);
    UpscaleOptions options;
    options.tile = kNetworkTile;
    options.progress = progress;
    for (int pass = 0; pass < kMaxNetworkPasses && (pixels.size(1) < hires.width || pixels.size(0) < hires.height); ++pass) {
      pixels = network.upscale_pixels(pixels, options);
    }
  }
  if (pixels.size(1) == hires.width && pixels.size(0) == hires.height) return pixels;
  const auto filter = hires.upscaler == HiresUpscaler::Nearest ? image::ResampleFilter::Nearest : image::ResampleFilter::Lanczos;
  return image::resize_like_pillow(pixels, hires.width, hires.height, filter);
}

namespace {

// The first pass's request made into the second pass's img2img: the hires size, sampler, schedule
// and prompts; the same seed, guidance, LoRAs and ControlNet units (their maps at the hires size, as
// sd-webui-controlnet's default "Both" passes).
ResolvedRequest second_pass_request(const ResolvedRequest& request) {
  const ResolvedHiresFix& hires = *request.hires;
  ResolvedRequest second = request;
  second.hires.reset();
  second.width = hires.width;
  second.height = hires.height;
  second.sampler = hires.sampler;
  second.first_step = hires.first_step;
  second.strength = hires.denoise;
  second.prompt_text = hires.prompt_text;
  second.negative_text = hires.negative_text;
  // SDXL's size conditioning follows the image unless it was asked for otherwise.
  const ImageSize first{request.width, request.height}, larger{hires.width, hires.height};
  if (second.original_size == first) second.original_size = larger;
  if (second.target_size == first) second.target_size = larger;
  prepare_control_images(second.controls, hires.width, hires.height);
  return second;
}

}  // namespace

GeneratedImage run_hires_pass(StableDiffusionModel& model, const ResolvedRequest& request, int index,
                              const at::Tensor& first_latents, const ProgressCallback& progress) {
  const ResolvedHiresFix& hires = *request.hires;
  ResolvedRequest second = second_pass_request(request);
  const int first_steps = request.sampler.steps - request.first_step;
  ProgressCallback continued;
  if (progress) {
    continued = [&progress, first_steps](const Progress& update) {
      if (update.phase != Phase::Denoise) return progress(update);
      // The phase began with the first pass; the second pass's start is its step first_steps again.
      if (update.done == 0) return true;
      Progress shifted = update;
      shifted.done += first_steps;
      shifted.total += first_steps;
      return progress(shifted);
    };
  }
  if (hires.upscales_latents()) {
    const int factor = model.vae_scale_factor();
    second.init_latents = upscale_latents(first_latents, hires.upscaler, hires.height / factor, hires.width / factor);
  } else {
    const at::Tensor pixels = upscale_first_pass_image(model, request, index, first_latents, progress);
    second.init_image = pixels;
    second.source.pixels = pixels;
    // diffusers' VaeImageProcessor, as prepare_source() does: / 255 in float32, then 2x - 1.
    second.source.image = (pixels.to(at::kFloat) / 255.0f).permute({2, 0, 1}).unsqueeze(0).contiguous() * 2.0f - 1.0f;
  }
  GeneratedImage result = generate_image(model, second, index, continued);
  result.parameters = a1111_parameters(request, result.seed, model.name);
  return result;
}

std::string a1111_upscaler_name(const ResolvedHiresFix& hires) {
  switch (hires.upscaler) {
    case HiresUpscaler::LatentBilinear: return "Latent";
    case HiresUpscaler::LatentNearest: return "Latent (nearest)";
    case HiresUpscaler::LatentBicubic: return "Latent (bicubic)";
    case HiresUpscaler::Lanczos: return "Lanczos";
    case HiresUpscaler::Nearest: return "Nearest";
    case HiresUpscaler::Neural: return hires.upscaler_file.stem().string();
  }
  return "";
}

std::string hires_parameters(const ResolvedHiresFix& hires) {
  std::ostringstream text;
  // AUTOMATIC1111's extra_generation_params order (StableDiffusionProcessingTxt2Img.init).
  text << ", Denoising strength: " << format_number(hires.denoise);
  if (hires.own_sampler) text << ", Hires sampler: " << sampling::display_name(hires.sampler);
  if (hires.prompt) text << ", Hires prompt: " << quoted(*hires.prompt);
  if (hires.negative_prompt) text << ", Hires negative prompt: " << quoted(*hires.negative_prompt);
  if (hires.sized) {
    text << ", Hires resize: " << hires.asked_width << "x" << hires.asked_height;
  } else {
    text << ", Hires upscale: " << format_number(hires.scale);
  }
  if (hires.asked_steps != 0) text << ", Hires steps: " << hires.asked_steps;
  text << ", Hires upscaler: " << a1111_upscaler_name(hires);
  return text.str();
}

}  // namespace diffuse::pipeline
