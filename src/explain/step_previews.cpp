#include "explain/step_previews.h"

#include <cstdio>

#include "image/animated_png.h"
#include "image/contact_sheet.h"
#include "image/image_edit.h"
#include "image/png_file.h"
#include "image/tensor_image.h"
#include "util/error.h"

namespace diffuse::explain {

namespace fs = std::filesystem;

// ComfyUI's latent_rgb_factors for SD 1.x (latent_formats.SD15).
const float kLatentRgbFactors[4][3] = {
    {0.3512f, 0.2297f, 0.3227f},
    {0.3250f, 0.4974f, 0.2350f},
    {-0.2829f, 0.1762f, 0.2721f},
    {-0.2120f, -0.2616f, -0.7177f},
};

namespace {

constexpr int kSheetCell = 128;      // pixels per side of a contact-sheet cell, at most
constexpr int kAnimationSide = 256;  // pixels per side of each half of an animation frame, at most
constexpr int kFrameMs = 250, kLastFrameMs = 2000;

// Noisy latents carry noise of size sigma (up to ~14.6 for SD's Euler family): as the UNet's input scaling
// does, bring them back to about unit spread so the picture is not just saturated colour.
at::Tensor unit_spread(const at::Tensor& latents) {
  const double spread = latents.to(at::kFloat).std().item<double>();
  return spread > 1.0 ? latents / spread : latents;
}

at::Tensor fit_within(const at::Tensor& image, int side) {
  const int64_t h = image.size(0), w = image.size(1);
  if (h <= side && w <= side) return image;
  const double scale = static_cast<double>(side) / static_cast<double>(std::max(h, w));
  return image::resize_image(image, std::max<int>(1, static_cast<int>(h * scale)),
                             std::max<int>(1, static_cast<int>(w * scale)));
}

}  // namespace

at::Tensor latents_to_rgb_linear(const at::Tensor& latents) {
  if (latents.dim() != 4 || latents.size(1) != 4) {
    throw InvalidParameter("preview", "linear: the linear latent-to-RGB map knows SD 1.x's 4 latent channels, got latents " +
                c10::str(latents.sizes()) + "; use preview vae");
  }
  const auto factors = at::from_blob(const_cast<float*>(&kLatentRgbFactors[0][0]), {4, 3}, at::kFloat);
  const auto hwc = latents[0].to(at::kFloat).permute({1, 2, 0}).matmul(factors);  // [h, w, 3] in about [-1, 1]
  return ((hwc + 1) / 2).clamp(0, 1).mul(255).round().to(at::kByte).contiguous();
}

PreviewChoice parse_preview(const std::string& text) {
  if (text == "linear") return {PreviewMode::Linear, std::nullopt};
  if (text == "vae") return {PreviewMode::Vae, std::nullopt};
  if (text == "taesd") return {PreviewMode::Taesd, std::nullopt};
  if (const auto taesd = pipeline::taesd_spec_path(text)) return {PreviewMode::Taesd, *taesd};
  throw InvalidParameter("preview", "'" + text + "' is not one of linear, vae, taesd, taesd:PATH");
}

at::Tensor latents_preview(pipeline::StableDiffusionModel& model, const at::Tensor& latents, PreviewMode mode) {
  switch (mode) {
    case PreviewMode::Linear: return latents_to_rgb_linear(latents);
    case PreviewMode::Vae: return image::to_uint8_image(model.decode_latents(latents))[0];
    case PreviewMode::Taesd: return image::to_uint8_image(model.decode_latents_taesd(latents))[0];
  }
  throw Error("preview: unknown mode");
}

StepPreviewWriter::StepPreviewWriter(pipeline::StableDiffusionModel& model, fs::path folder, PreviewMode mode)
    : model_(model), folder_(std::move(folder)), mode_(mode) {
  if (mode_ == PreviewMode::Taesd && !model_.taesd) {
    throw InvalidParameter("preview", "taesd: no TAESD loaded; give its path (taesd:PATH), here or as the VAE");
  }
  if (mode_ == PreviewMode::Linear && model_.vae->config.latent_channels != 4) {
    throw InvalidParameter("preview", "linear: the model's latents have " + std::to_string(model_.vae->config.latent_channels) +
                                          " channels, the linear map knows 4; use preview vae");
  }
  std::error_code error;
  fs::create_directories(folder_, error);
  if (!fs::is_directory(folder_)) throw InvalidParameter("save_steps", "cannot create folder '" + folder_.string() + "'");
}

at::Tensor StepPreviewWriter::preview(const at::Tensor& latents) {
  if (mode_ != PreviewMode::Linear) return latents_preview(model_, latents, mode_);
  const auto small = latents_to_rgb_linear(latents);
  const int factor = model_.vae_scale_factor();
  return image::resize_image(small, static_cast<int>(small.size(0)) * factor, static_cast<int>(small.size(1)) * factor);
}

void StepPreviewWriter::on_step(const pipeline::Progress& step) {
  if (step.latents == nullptr || step.denoised == nullptr) throw Error("save_steps: a step came without its latents");
  torch::NoGradGuard no_grad;
  const int digits = static_cast<int>(std::to_string(step.total).size());
  char number[32];
  std::snprintf(number, sizeof number, "%0*d", std::max(2, digits), step.done);
  const auto noisy = preview(unit_spread(*step.latents));
  const auto denoised = preview(*step.denoised);
  files_.noisy.push_back(folder_ / ("step-" + std::string(number) + "-noisy.png"));
  files_.denoised.push_back(folder_ / ("step-" + std::string(number) + "-x0.png"));
  image::write_png(files_.noisy.back(), noisy);
  image::write_png(files_.denoised.back(), denoised);
  noisy_.push_back(noisy);
  denoised_.push_back(denoised);
}

const StepFiles& StepPreviewWriter::finish() {
  if (noisy_.empty()) throw Error("save_steps: the sampler reported no steps");
  // A hires fix's second pass previews a larger image: the sheet and the animation show every step
  // at the first step's size.
  const auto width = static_cast<int>(noisy_[0].size(1)), height = static_cast<int>(noisy_[0].size(0));
  for (auto* row : {&noisy_, &denoised_}) {
    for (auto& image : *row) {
      if (image.size(1) != width || image.size(0) != height) image = image::resize(image, width, height);
    }
  }
  // Sheet: the noisy latents on the first row, the predicted x0 below, one column per step.
  std::vector<at::Tensor> cells;
  for (const auto* row : {&noisy_, &denoised_}) {
    for (const auto& image : *row) cells.push_back(fit_within(image, kSheetCell));
  }
  files_.sheet = folder_ / "steps.png";
  image::write_png(files_.sheet, image::contact_sheet(cells, static_cast<int>(noisy_.size())));
  // Animation: each frame shows a step's noisy latents beside its predicted x0.
  std::vector<at::Tensor> frames;
  for (size_t i = 0; i < noisy_.size(); ++i) {
    frames.push_back(image::side_by_side({fit_within(noisy_[i], kAnimationSide), fit_within(denoised_[i], kAnimationSide)}));
  }
  files_.animation = folder_ / "denoising.png";
  image::write_animated_png(files_.animation, frames, kFrameMs, kLastFrameMs);
  return files_;
}

}  // namespace diffuse::explain
