#pragma once
// ControlNetModel: steers a UNet with a control image (edges, depth, pose...). A copy of the UNet's
// encoder reads the noisy latents, the text and the control image (through the hint encoder, added
// after conv_in); 1x1 "zero" convolutions turn each of its skip features and its middle block's
// output into residuals the UNet adds to its own (models/unet.h ControlResiduals).
#include <torch/torch.h>

#include "models/config.h"
#include "models/layers.h"
#include "models/unet.h"

namespace diffuse::models {

// The hint encoder (diffusers' ControlNetConditioningEmbedding): conv_in, SiLU, then per further
// width a stride-1 and a stride-2 conv each followed by SiLU, and conv_out to the UNet's first width.
struct ControlNetConditioningEmbeddingImpl : torch::nn::Module {
  ControlNetConditioningEmbeddingImpl(int conditioning_channels, const std::vector<int>& widths, int out_channels);
  at::Tensor forward(const at::Tensor& image);

  Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList blocks;
};
TORCH_MODULE(ControlNetConditioningEmbedding);

// How strongly the residuals steer: `scale` (diffusers' conditioning_scale) for all of them, or with
// `guess_mode` diffusers' ramp, residual k of n (the middle one last) times
// logspace(-1, 0, n)[k] * scale, so the deep features steer most (ControlNet's "guess mode").
struct ControlStrength {
  double scale = 1.0;
  bool guess_mode = false;
};

struct ControlNetModelImpl : torch::nn::Module {
  explicit ControlNetModelImpl(const ControlNetConfig& config);
  // sample [B, C, h, w] (the UNet's input), timestep and context as the UNet takes them, `image`
  // [B or 1, conditioning_channels, h x f, w x f] in [0, 1] with f the hint encoder's factor.
  ControlResiduals forward(const at::Tensor& sample, const at::Tensor& timestep, const at::Tensor& context,
                           const at::Tensor& image, const ControlStrength& strength = {},
                           const AddedConditioning* added = nullptr);
  // The hint encoder's output for `image`, with the checks forward() makes (exposed for tests).
  at::Tensor embed_hint(const at::Tensor& image, const at::Tensor& sample);

  ControlNetConfig config;
  Conv2d conv_in{nullptr};
  torch::nn::Sequential time_embedding{nullptr};  // linear_1, SiLU, linear_2
  torch::nn::Sequential add_embedding{nullptr};   // text_time (SDXL) only
  ControlNetConditioningEmbedding controlnet_cond_embedding{nullptr};
  torch::nn::ModuleList down_blocks, controlnet_down_blocks;
  MidBlock mid_block{nullptr};
  Conv2d controlnet_mid_block{nullptr};
};
TORCH_MODULE(ControlNetModel);

// diffusers' guess-mode weights of the n residuals: logspace(-1, 0, n) (float32), times `scale`.
std::vector<double> guess_mode_scales(size_t residuals, double scale);

}  // namespace diffuse::models
