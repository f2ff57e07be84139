// `diffuse generate --save-steps DIR`: the denoising made visible. After every sampler step, a picture
// of the noisy latents and one of the model's current guess of the clean latents (x0); at the end a
// contact sheet of all steps and an animated PNG.
#pragma once
#include <filesystem>
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

enum class PreviewMode { Linear, Vae };
PreviewMode preview_mode_from_name(const std::string& name);  // "linear" | "vae"; InvalidParameter `preview`

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
