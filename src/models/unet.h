#pragma once
// UNet2DConditionModel: predicts the noise (or v) in a latent at a timestep, guided by text.
#include <torch/torch.h>

#include "models/config.h"
#include "models/layers.h"
#include "models/transformer.h"

namespace diffuse::models {

// One level of the down path: resnets (each followed by a transformer at attention levels),
// then a stride-2 downsampler except at the deepest level.
struct DownBlockImpl : torch::nn::Module {
  DownBlockImpl(const UNetConfig& config, int level);
  // Appends every intermediate output to `skips` for the up path.
  at::Tensor forward(at::Tensor x, const at::Tensor& temb, const at::Tensor& context, std::vector<at::Tensor>& skips);

  torch::nn::ModuleList resnets, attentions, downsamplers;
};
TORCH_MODULE(DownBlock);

struct MidBlockImpl : torch::nn::Module {
  explicit MidBlockImpl(const UNetConfig& config);
  at::Tensor forward(at::Tensor x, const at::Tensor& temb, const at::Tensor& context);

  torch::nn::ModuleList resnets, attentions;
};
TORCH_MODULE(MidBlock);

// One level of the up path: resnets fed with the concatenated skip connections, optional
// transformers, then an upsampler except at the last level.
struct UpBlockImpl : torch::nn::Module {
  UpBlockImpl(const UNetConfig& config, int index);
  // Consumes its skip connections from the back of `skips`.
  at::Tensor forward(at::Tensor x, const at::Tensor& temb, const at::Tensor& context, std::vector<at::Tensor>& skips);

  torch::nn::ModuleList resnets, attentions, upsamplers;
};
TORCH_MODULE(UpBlock);

// SDXL's added conditioning (config.addition_embed_type "text_time"), as diffusers'
// added_cond_kwargs. Rows: one per batch item, or one row for the whole batch.
struct AddedConditioning {
  at::Tensor text_embeds;  // [B, pooled_dim]: the second text encoder's pooled, projected embedding
  at::Tensor time_ids;     // [B, n] float: SDXL base n = 6, original size (h, w), crop (top, left), target size (h, w)
};

struct UNet2DConditionModelImpl : torch::nn::Module {
  explicit UNet2DConditionModelImpl(const UNetConfig& config);
  // sample [B, C, h, w]; timestep: one value for the whole batch, or [B]; context [B, tokens, dim].
  // `added`: required by a text_time UNet (diffuse::Error naming what is missing or mis-shaped),
  // ignored by the others.
  at::Tensor forward(const at::Tensor& sample, const at::Tensor& timestep, const at::Tensor& context,
                     const AddedConditioning* added = nullptr);

  UNetConfig config;
  Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::Sequential time_embedding{nullptr};  // linear_1, SiLU, linear_2
  // text_time only: linear_1, SiLU, linear_2 on concat(text_embeds, sinusoidal(time_ids)).
  torch::nn::Sequential add_embedding{nullptr};
  torch::nn::ModuleList down_blocks, up_blocks;
  MidBlock mid_block{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(UNet2DConditionModel);

// Sinusoidal embedding of (possibly fractional) timesteps, as diffusers' get_timestep_embedding.
at::Tensor timestep_embedding(const at::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos, double freq_shift);

}  // namespace diffuse::models
