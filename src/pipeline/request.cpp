#include "pipeline/request.h"

#include <cmath>
#include <sstream>

#include "pipeline/hires_fix.h"
#include "pipeline/model.h"
#include "pipeline/source_image.h"
#include "text/extra_networks.h"
#include "text/prompt_attention.h"
#include "text/prompt_schedule.h"
#include "util/error.h"
#include "util/format.h"

namespace diffuse::pipeline {

namespace {

void check_side(const char* parameter, int value, int multiple) {
  if (value <= 0 || value % multiple != 0) {
    throw InvalidParameter(parameter, std::to_string(value) + " is not a positive multiple of " + std::to_string(multiple));
  }
}

// Beyond these the UNet sees a picture unlike any it learnt from (repeated subjects, broken-up
// composition) and each step costs far more: a step's attention grows with the square of the area.
constexpr double kFarAreaRatio = 4.0;

// A malformed weight ("(word:1.2.3)") in any of the prompt's per-step texts, refused before a model
// is touched.
void check_prompt_syntax(const std::string& parameter, const std::string& prompt, int steps) {
  try {
    for (const auto& entry : text::prompt_schedule(prompt, steps)) text::parse_prompt_attention(entry.text);
  } catch (const InvalidParameter& e) {
    if (e.parameter() != "prompt") throw;
    throw InvalidParameter(parameter, e.problem());
  }
}

double lora_weight(const std::string& tag, const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || !std::isfinite(value)) {
    throw InvalidParameter("prompt", tag + ": '" + text + "' is not a number");
  }
  return value;
}

// AUTOMATIC1111's reading of <lora:name:te:unet> (extensions-builtin/Lora/extra_networks_lora.py):
// te defaults to 1, unet to te; te= and unet= name them.
LoraWeight lora_of_tag(const text::ExtraNetworkTag& tag) {
  std::string shown = "<" + tag.kind;
  for (const auto& item : tag.positional) shown += ":" + item;
  for (const auto& [key, value] : tag.named) shown += ":" + key + "=" + value;
  shown += ">";
  if (tag.kind != "lora" && tag.kind != "lyco") {
    throw InvalidParameter("prompt", shown + ": only <lora:...> extra networks are supported");
  }
  if (tag.positional.empty() || tag.positional[0].empty()) throw InvalidParameter("prompt", shown + " names no LoRA");
  for (const auto& [key, value] : tag.named) {
    if (key != "te" && key != "unet") throw InvalidParameter("prompt", shown + ": unknown argument '" + key + "' (te=, unet=)");
  }
  if (tag.positional.size() > 3) throw InvalidParameter("prompt", shown + ": at most a name and two weights");
  LoraWeight lora{tag.positional[0], 1, 1};
  if (tag.positional.size() > 1) lora.text_encoder = lora_weight(shown, tag.positional[1]);
  if (tag.named.count("te")) lora.text_encoder = lora_weight(shown, tag.named.at("te"));
  lora.unet = tag.positional.size() > 2 ? lora_weight(shown, tag.positional[2]) : lora.text_encoder;
  if (tag.named.count("unet")) lora.unet = lora_weight(shown, tag.named.at("unet"));
  return lora;
}

void resolve_loras(const GenerationRequest& request, ResolvedRequest& resolved) {
  auto wanted = request.loras;
  // Without the prompt language a tag is words like any other.
  const auto prompts = request.prompt_syntax ? std::vector<std::string*>{&resolved.prompt_text, &resolved.negative_text}
                                             : std::vector<std::string*>{};
  for (auto* prompt : prompts) {
    auto taken = text::take_extra_network_tags(*prompt);
    *prompt = taken.text;
    try {
      for (const auto& tag : taken.tags) wanted.push_back(lora_of_tag(tag));
    } catch (const InvalidParameter& e) {
      throw InvalidParameter(prompt == &resolved.prompt_text ? "prompt" : "negative_prompt", e.problem());
    }
  }
  for (const auto& lora : wanted) {
    for (const double weight : {lora.text_encoder, lora.unet}) {
      if (!std::isfinite(weight)) throw InvalidParameter("lora", lora.name + ": its weight must be a finite number");
    }
    resolved.loras.push_back({find_lora_file(lora.name, request.lora_dirs), lora.text_encoder, lora.unet});
  }
}

}  // namespace

ResolvedRequest validate(const GenerationRequest& request) {
  ResolvedRequest resolved;
  resolved.prompt = request.prompt;
  resolved.negative_prompt = request.negative_prompt;
  resolved.prompt_text = request.prompt;
  resolved.negative_text = request.negative_prompt;
  resolve_loras(request, resolved);
  // 0 asks for the model's size; anything else must at least be a whole latent pixel.
  if (request.width != 0) check_side("width", request.width, 8);
  if (request.height != 0) check_side("height", request.height, 8);
  resolved.width = request.width;
  resolved.height = request.height;
  if (!std::isfinite(request.cfg_scale) || request.cfg_scale < 0) {
    throw InvalidParameter("cfg_scale", format_number(request.cfg_scale) + " must be a finite number >= 0");
  }
  resolved.cfg_scale = request.cfg_scale;
  resolved.guidance_embedding = request.guidance_embedding;
  if (request.batch_count < 1) {
    throw InvalidParameter("batch_count", std::to_string(request.batch_count) + " must be at least 1");
  }
  if (request.seed > UINT64_MAX - static_cast<uint64_t>(request.batch_count - 1)) {
    throw InvalidParameter("seed", "the batch's seeds (" + std::to_string(request.seed) + " + " +
                                       std::to_string(request.batch_count - 1) + ") run past 2^64 - 1");
  }
  resolved.seed = request.seed;
  resolved.batch_count = request.batch_count;
  if (request.clip_skip < 1) {
    throw InvalidParameter("clip_skip", std::to_string(request.clip_skip) + " must be at least 1 (1: the last layer)");
  }
  resolved.clip_skip = request.clip_skip;
  for (const auto& [parameter, size] : {std::pair{"original_size", request.original_size}, std::pair{"target_size", request.target_size}}) {
    if (size && (size->width <= 0 || size->height <= 0)) {
      throw InvalidParameter(parameter, std::to_string(size->width) + "," + std::to_string(size->height) +
                                            " must be two positive numbers, width,height");
    }
  }
  if (request.crop_coords && (request.crop_coords->x < 0 || request.crop_coords->y < 0)) {
    throw InvalidParameter("crop_coords", std::to_string(request.crop_coords->x) + "," +
                                              std::to_string(request.crop_coords->y) + " must be 0 or more, x,y");
  }
  resolved.original_size = request.original_size;
  resolved.crop_coords = request.crop_coords;
  resolved.target_size = request.target_size;

  auto& sampler = resolved.sampler;
  sampler.sampler = request.sampler;
  sampler.steps = request.steps;
  sampler.eta = request.eta;
  sampler.schedule = sampling::parse_sigma_schedule(request.schedule);
  if (!request.timestep_spacing.empty()) sampler.timestep_spacing = sampling::parse_spacing(request.timestep_spacing);
  if (!request.prediction.empty()) sampler.prediction = sampling::parse_prediction(request.prediction);
  sampling::validate(sampler);
  resolved.prompt_syntax = request.prompt_syntax;
  if (request.prompt_syntax) {
    check_prompt_syntax("prompt", resolved.prompt_text, sampler.steps);
    check_prompt_syntax("negative_prompt", resolved.negative_text, sampler.steps);
  }
  validate_source(request, resolved);
  resolved.controls = validate_controls(request.controls, request.controlnet_dirs, request.control_mode,
                                        request.control_resize, request.control_guess_mode);
  validate_hires_fix(request, resolved);
  return resolved;
}

ResolvedRequest resolve(const ResolvedRequest& request, const StableDiffusionModel& model) {
  ResolvedRequest resolved = request;
  const int trained = model.default_image_size();
  // The UNet halves the latent once per level below the top; every level must divide evenly.
  const int grid = std::max(8, model.vae_scale_factor() << (model.unet->config.levels() - 1));
  size_from_source(resolved, grid);
  if (resolved.width == 0) resolved.width = trained;
  if (resolved.height == 0) resolved.height = trained;
  check_side("width", resolved.width, grid);
  check_side("height", resolved.height, grid);
  sampling::validate_for(resolved.sampler, model.scheduler);
  if (resolved.clip_skip > model.text_encoder_layers()) {
    throw InvalidParameter("clip_skip", std::to_string(resolved.clip_skip) + " is more than the text encoder's " +
                                            std::to_string(model.text_encoder_layers()) + " layers");
  }
  if (model.is_sdxl()) {
    const ImageSize image{resolved.width, resolved.height};
    if (!resolved.original_size) resolved.original_size = image;
    if (!resolved.target_size) resolved.target_size = image;
    if (!resolved.crop_coords) resolved.crop_coords = CropOffset{};
  } else {
    for (const auto& [parameter, given] : {std::pair{"original_size", resolved.original_size.has_value()},
                                           std::pair{"crop_coords", resolved.crop_coords.has_value()},
                                           std::pair{"target_size", resolved.target_size.has_value()}}) {
      if (given) throw InvalidParameter(parameter, "only SDXL models take size conditioning");
    }
  }

  const bool embedded = model.has_guidance_embedding();
  if (resolved.guidance_embedding && *resolved.guidance_embedding != embedded) {
    throw InvalidParameter("guidance_embedding",
                           embedded ? "this model's UNet (time_cond_proj_dim " +
                                          std::to_string(model.unet->config.time_cond_proj_dim) +
                                          ", LCM-distilled) always reads the guidance scale as its embedding"
                                    : "only LCM-distilled UNets (time_cond_proj_dim in their config) take a guidance "
                                      "embedding; " + model.name + " has none: use the cfg scale for CFG, or an "
                                      "LCM model");
  }
  resolved.guidance_embedding = embedded;
  if (!resolved.guided() && !resolved.negative_text.empty()) {
    resolved.warnings.push_back(std::string("the negative prompt is ignored: ") +
                                (embedded ? "an LCM model runs one UNet pass per step, guided by its embedding"
                                          : "at a CFG scale of 1 or less no unconditional pass runs"));
  }

  const double area_ratio = static_cast<double>(resolved.width) * resolved.height / (static_cast<double>(trained) * trained);
  if (area_ratio > kFarAreaRatio || area_ratio < 1 / kFarAreaRatio) {
    std::ostringstream warning;
    warning << resolved.width << 'x' << resolved.height << " is " << format_number(area_ratio > 1 ? area_ratio : 1 / area_ratio)
            << (area_ratio > 1 ? "x the area" : "x less than the area") << " the model was trained at (" << trained << 'x'
            << trained << "): expect repeated or broken-up subjects";
    if (area_ratio > 1) warning << ", and steps that take far longer";
    resolved.warnings.push_back(warning.str());
  }
  prepare_source(resolved, model.is_inpainting());
  prepare_control_images(resolved.controls, resolved.width, resolved.height);
  resolve_hires_fix(resolved, model, grid);
  return resolved;
}

ResolvedRequest resolve(const GenerationRequest& request, const StableDiffusionModel& model) {
  return resolve(validate(request), model);
}

std::string a1111_parameters(const ResolvedRequest& request, uint64_t seed, const std::string& model_name) {
  const auto& sampler = request.sampler;
  std::ostringstream text;
  text << request.prompt << '\n';
  // Unguided runs never read it, and the same image comes back without it.
  if (!request.negative_prompt.empty() && request.guided()) text << "Negative prompt: " << request.negative_prompt << '\n';
  text << "Steps: " << sampler.steps << ", Sampler: " << sampling::display_name(sampler)
       << ", CFG scale: " << format_number(request.cfg_scale) << ", Seed: " << seed << ", Size: " << request.width << 'x'
       << request.height << ", Model: " << model_name;
  if (request.guidance_embedding.value_or(false)) {
    text << ", Guidance: LCM embedding (one UNet pass per step)";
  } else if (!request.guided()) {
    text << ", Guidance: none (one UNet pass per step" << (request.negative_prompt.empty() ? "" : "; negative prompt unused")
         << ")";
  }
  if (sampler.eta != 0) text << ", Eta: " << format_number(sampler.eta);
  if (sampler.timestep_spacing) text << ", Timestep spacing: " << sampling::name_of(*sampler.timestep_spacing);
  if (request.clip_skip > 1) text << ", Clip skip: " << request.clip_skip;
  if (request.has_init_image()) text << ", Denoising strength: " << format_number(request.strength);
  if (request.hires) text << hires_parameters(*request.hires);
  if (request.inpainting()) text << ", Mask blur: " << format_number(request.mask_blur);
  if (request.outpaint) {
    const auto& pad = *request.outpaint;
    text << ", Outpaint: " << pad.left << "," << pad.right << "," << pad.top << "," << pad.bottom << " " << outpaint_fill_name(request.outpaint_fill);
  }
  // As sd-webui-controlnet writes its units.
  static const char* const kModeNames[] = {"Balanced", "My prompt is more important", "ControlNet is more important"};
  static const char* const kResizeNames[] = {"Just Resize", "Crop and Resize", "Resize and Fill"};
  const auto& controls = request.controls;
  for (size_t i = 0; i < controls.units.size(); ++i) {
    const auto& unit = controls.units[i];
    text << ", ControlNet " << i << ": \"Module: " << unit.module << ", Model: " << unit.name << ", Weight: " << format_number(unit.weight)
         << ", Resize Mode: " << kResizeNames[static_cast<int>(controls.resize)]
         << ", Guidance Start: " << format_number(unit.start) << ", Guidance End: " << format_number(unit.end)
         << ", Control Mode: " << (controls.guess_mode ? "Guess mode" : kModeNames[static_cast<int>(controls.mode)])
         << "\"";
  }
  return text.str();
}

}  // namespace diffuse::pipeline
