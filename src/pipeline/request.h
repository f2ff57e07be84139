#pragma once
// One generation request, as every front end (the CLI, the server, the benchmark) fills it in, and
// the one place it is checked. Values arrive as people write them (names, not enums); validate()
// parses and checks everything that needs no model, so bad input fails before seconds of loading,
// and resolve() adds the model's defaults and limits. Each check lives in exactly one of the two.
// Errors are diffuse::InvalidParameter naming the field below (width, cfg_scale, timestep_spacing);
// front ends translate that to their own names (--width, the JSON field width).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "image/image_edit.h"
#include "pipeline/control_unit.h"
#include "pipeline/hires_fix_options.h"
#include "pipeline/lora.h"
#include "sampling/sampling.h"

namespace diffuse::pipeline {

class StableDiffusionModel;

struct ImageSize {
  int width = 0;
  int height = 0;
  bool operator==(const ImageSize& other) const { return width == other.width && height == other.height; }
};
struct CropOffset {
  int x = 0;  // left
  int y = 0;  // top
};

// A LoRA asked for by name (a file, or `<name>.safetensors` in lora_dirs), as --lora and the prompt's
// `<lora:name:te:unet>` give it.
struct LoraWeight {
  std::string name;
  double text_encoder = 1;
  double unet = 1;
};

struct GenerationRequest {
  std::string prompt;
  std::string negative_prompt;  // empty: the unconditional prompt "", as diffusers uses
  int width = 0;                // pixels; 0: the model's training size
  int height = 0;
  int steps = 20;
  double cfg_scale = 7.5;  // 1 or less: no guidance (one UNet pass per step); LCM models: their guidance embedding's scale
  // An LCM-distilled UNet (time_cond_proj_dim) takes cfg_scale as its guidance embedding instead of
  // CFG. Unset: whatever the model is; true: refused unless the model is such a UNet; false: refused
  // for one (it has no CFG-free reading).
  std::optional<bool> guidance_embedding;
  std::string sampler = "euler";
  std::string schedule = "default";  // default | karras | exponential | sgm_uniform
  std::string timestep_spacing;      // leading | trailing | linspace; empty: the scheduler config's
  std::string prediction;            // epsilon | v_prediction; empty: the scheduler config's
  double eta = 0;
  uint64_t seed = 42;   // of the first image; image i of a batch uses seed + i
  int batch_count = 1;  // images made one after another
  int clip_skip = 1;    // AUTOMATIC1111's meaning: 1 = the text encoder's last layer the model uses
  // Prompts in AUTOMATIC1111's language: (emphasis:1.2), [from:to:when] and [a|b] per step, BREAK,
  // chunks of 75 tokens past CLIP's window, embeddings by name. false: the text goes to the tokenizer
  // as it is and is cut at 77 tokens, as diffusers reads it.
  bool prompt_syntax = true;
  // LoRAs for this request, with those the prompts name in `<lora:name:weight>` tags (the tags are
  // taken out of the text the encoders read, as AUTOMATIC1111 does). None: the model as loaded.
  std::vector<LoraWeight> loras;
  std::vector<std::filesystem::path> lora_dirs;  // where names are looked up
  // SDXL's size conditioning (text_time), as diffusers' original_size, crops_coords_top_left and
  // target_size; unset: the image's size, (0, 0), the image's size.
  std::optional<ImageSize> original_size;
  std::optional<CropOffset> crop_coords;
  std::optional<ImageSize> target_size;

  // img2img: the picture to start from, uint8 [H, W, C] as read_png() gives it (grey becomes RGB,
  // alpha is ignored). Resized to width x height when they are given; otherwise the run takes its
  // size, rounded down to the model's latent grid.
  at::Tensor init_image;
  // How much of the schedule runs from the noised init image, (0, 1]: the last int(steps x
  // strength) steps (diffusers' and AUTOMATIC1111's denoising strength). Unset: 0.75 with an init
  // image; without one it must stay unset.
  std::optional<double> strength;
  // Inpainting: uint8 [H, W, C]; white (grey >= 128 after PIL's luma conversion) is repainted,
  // black kept. Resized to the init image's size when it differs. Models with a 9-channel UNet
  // (inpainting models) see the mask and the masked image; others blend the noised init image back
  // outside the mask after every step.
  at::Tensor mask;
  // Pixels of Gaussian blur on the mask's edge where the result is pasted over the init image
  // (AUTOMATIC1111's default, 4); the latent mask stays the unblurred one, binarized.
  double mask_blur = 4;
  // Outpainting: pixels added on each side of the init image; the new area is filled
  // (outpaint_fill: "edge" repeats the border colours, "noise" puts random colours from the seed)
  // and repainted (mask_blur pixels into the old image too, so the seam blends).
  std::optional<image::Padding> outpaint;
  std::string outpaint_fill = "edge";

  // ControlNet units (pipeline/control_unit.h), their residuals summed; the mode, guess mode and
  // resize rule apply to every unit.
  std::vector<ControlUnit> controls;
  std::vector<std::filesystem::path> controlnet_dirs;  // where unit models given by name are looked up
  std::string control_mode = "balanced";               // balanced | prompt | control
  std::string control_resize = "stretch";              // stretch | crop | fit
  bool control_guess_mode = false;
  // Text to image only: a second, larger pass over the first (pipeline/hires_fix.h).
  std::optional<HiresFixRequest> hires;
};

// What an img2img or inpainting run starts from, prepared once for every image of the request.
// What outpainting's new area starts as: Edge repeats the border colours, Noise puts random colours
// from the seed.
enum class OutpaintFill { Edge, Noise };
const char* outpaint_fill_name(OutpaintFill fill);  // "edge", "noise": as requests name them

struct SourceImage {
  at::Tensor image;        // float [1, 3, H, W] in [-1, 1], what the VAE encodes
  at::Tensor pixels;       // uint8 [H, W, 3]: the same picture, pasted back outside the mask
  at::Tensor mask;         // float [1, 1, H, W], 1 = repaint, binarized at 0.5; undefined for img2img
  at::Tensor paste_mask;   // float [H, W] in [0, 1]: the mask blurred by mask_blur, for the paste
};

// A request that passed validate() (and, once a model is loaded, resolve()).
struct ResolvedRequest {
  std::string prompt;  // as given, tags and all: what the PNG's parameters record
  std::string negative_prompt;
  std::string prompt_text;  // without the extra-network tags: what the text encoders read
  std::string negative_text;
  std::vector<LoraUse> loras;  // request's and tags', their files found
  int width = 0;  // 0 until resolve() puts in the model's size
  int height = 0;
  double cfg_scale = 7.5;
  std::optional<bool> guidance_embedding;  // as asked; resolve() sets it to what the model has
  uint64_t seed = 42;
  int batch_count = 1;
  int clip_skip = 1;
  bool prompt_syntax = true;
  // Classifier-free guidance: two UNet batches per step ([negative, prompt]). Not at cfg_scale <= 1,
  // where guidance cannot change the prediction, nor with a guidance embedding: one batch, and the
  // negative prompt goes unread (as diffusers does).
  bool guided() const { return cfg_scale > 1.0 && !guidance_embedding.value_or(false); }
  // resolve() fills these in for SDXL models (and refuses them for others).
  std::optional<ImageSize> original_size;
  std::optional<CropOffset> crop_coords;
  std::optional<ImageSize> target_size;
  sampling::SamplerOptions sampler;
  // img2img / inpainting: validate() checks and keeps the request's images; resolve() prepares
  // `source` at the run's size.
  at::Tensor init_image;
  at::Tensor mask;
  double strength = 1.0;
  int first_step = 0;  // sampling::first_step_for_strength(steps, strength)
  double mask_blur = 0;
  std::optional<image::Padding> outpaint;
  OutpaintFill outpaint_fill = OutpaintFill::Edge;
  SourceImage source;
  ResolvedControls controls;  // validate() finds the nets; resolve() sizes the images
  // img2img from latents instead of an image (the hires fix's latent upscalers): no VAE encode.
  at::Tensor init_latents;
  std::optional<ResolvedHiresFix> hires;
  bool has_init_image() const { return init_image.defined(); }
  bool inpainting() const { return mask.defined() || outpaint.has_value(); }
  // What will run but may not give what the user hopes (a size far from the model's training
  // size): for the front end to show. Filled by resolve().
  std::vector<std::string> warnings;

  uint64_t seed_of(int image) const { return seed + static_cast<uint64_t>(image); }
};

ResolvedRequest validate(const GenerationRequest& request);
// Fills width and height where 0, checks them against the model's latent grid and the steps
// against its training schedule, and adds warnings.
ResolvedRequest resolve(const ResolvedRequest& request, const StableDiffusionModel& model);
ResolvedRequest resolve(const GenerationRequest& request, const StableDiffusionModel& model);

// The "parameters" text AUTOMATIC1111's web UI stores in its PNGs, which many tools read back.
std::string a1111_parameters(const ResolvedRequest& request, uint64_t seed, const std::string& model_name);

}  // namespace diffuse::pipeline
