// `diffuse generate --save-steps DIR`: the denoising made visible. After every sampler step, a picture
// of the noisy latents and one of the model's current guess of the clean latents (x0); at the end a
// contact sheet of all steps and an animated PNG.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "pipeline/generation.h"
#include "pipeline/model.h"

namespace diffuse::explain {

// The well-known linear map from SD 1.x latents (4 channels, scaled by 0.18215) to RGB that ComfyUI's
// and AUTOMATIC1111's live previews use: rgb = latent[c] . factors[c], then (rgb + 1) / 2. Rows are
// latent channels, columns R, G, B.
extern const float kLatentRgbFactors[4][3];

// [1, 4, h, w] scaled latents -> uint8 [h, w, 3]. Throws diffuse::Error for other channel counts.
at::Tensor latents_to_rgb_linear(const at::Tensor& latents);

// linear: the map above (free); vae: the model's decoder (as costly as the final decode, per
// picture); taesd: TAESD's decoder (about a tenth of the VAE's cost at 512x512, close to its picture).
enum class PreviewMode { Linear, Vae, Taesd };
// "linear" | "vae" | "taesd" | "taesd:PATH"; InvalidParameter `preview` otherwise.
struct PreviewChoice {
  PreviewMode mode = PreviewMode::Linear;
  std::optional<std::filesystem::path> taesd;  // "taesd:PATH": the TAESD to load for the previews
};
PreviewChoice parse_preview(const std::string& text);

// One preview of scaled latents [1, C, h, w] as uint8 [H, W, 3]: at the latents' size for linear, at
// the image's for vae and taesd. Taesd needs a model loaded with LoadOptions::taesd.
at::Tensor latents_preview(pipeline::StableDiffusionModel& model, const at::Tensor& latents, PreviewMode mode);

struct StepFiles {
  std::vector<std::filesystem::path> noisy, denoised;  // one per step
  std::filesystem::path sheet, animation;
};

// Observes one image's denoising (pipeline::Progress of Phase::Denoise); writes step-NN-noisy.png and
// step-NN-x0.png into `folder` as steps come in, and the sheet (steps.png) and animation
// (denoising.png, an APNG) on finish().
class StepPreviewWriter {
 public:
  StepPreviewWriter(pipeline::StableDiffusionModel& model, std::filesystem::path folder, PreviewMode mode);

  void on_step(const pipeline::Progress& step);
  const StepFiles& finish();

 private:
  at::Tensor preview(const at::Tensor& latents);  // uint8 [H, W, 3] at the image's size

  pipeline::StableDiffusionModel& model_;
  std::filesystem::path folder_;
  PreviewMode mode_;
  std::vector<at::Tensor> noisy_, denoised_;
  StepFiles files_;
};

}  // namespace diffuse::explain
