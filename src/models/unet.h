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

// What ControlNets add to a UNet (diffusers' down_block_additional_residuals and
// mid_block_additional_residual): one residual per skip connection, in the order the down path
// makes them (conv_in's output first), and one for the middle block's output.
struct ControlResiduals {
  std::vector<at::Tensor> down;
  at::Tensor mid;
};

// The embedding every res block reads: the sinusoidal timestep through time_embedding, plus an
// LCM UNet's guidance embedding (time_cond_proj) and SDXL's added embedding (add_embedding), as
// `config` says; `time_cond_proj` and `add_embedding` are null where it has none. A UNet and a
// ControlNet (whose encoder is a copy of its UNet's) compute it alike. `component` starts errors.
at::Tensor embed_timestep(const UNetConfig& config, torch::nn::Sequential time_embedding, Linear time_cond_proj,
                          torch::nn::Sequential add_embedding, const at::Tensor& sample, const at::Tensor& timestep,
                          const AddedConditioning* added, const at::Tensor& timestep_cond, const char* component);

struct UNet2DConditionModelImpl : torch::nn::Module {
  explicit UNet2DConditionModelImpl(const UNetConfig& config);
  // sample [B, C, h, w]; timestep: one value for the whole batch, or [B]; context [B, tokens, dim].
  // `added`: required by a text_time UNet (diffuse::Error naming what is missing or mis-shaped),
  // ignored by the others. `timestep_cond` [B or 1, time_cond_proj_dim]: an LCM UNet's guidance
  // embedding (guidance_scale_embedding), required by it and refused by others.
  // `control`: residuals added to the skip connections and the middle block's output (their batch
  // and sizes as those features'); a diffuse::Error names a residual that does not fit.
  at::Tensor forward(const at::Tensor& sample, const at::Tensor& timestep, const at::Tensor& context,
                     const AddedConditioning* added = nullptr, const at::Tensor& timestep_cond = {},
                     const ControlResiduals* control = nullptr);

  UNetConfig config;
  Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::Sequential time_embedding{nullptr};  // linear_1, SiLU, linear_2
  // time_cond_proj_dim > 0: time_embedding.cond_proj (no bias), added to the sinusoids before linear_1.
  Linear time_cond_proj{nullptr};
  // text_time only: linear_1, SiLU, linear_2 on concat(text_embeds, sinusoidal(time_ids)).
  torch::nn::Sequential add_embedding{nullptr};
  torch::nn::ModuleList down_blocks, up_blocks;
  MidBlock mid_block{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(UNet2DConditionModel);

// diffusers' TimestepEmbedding: linear_1, SiLU, linear_2.
torch::nn::Sequential timestep_embedding_mlp(int64_t in, int64_t out);

// Sinusoidal embedding of (possibly fractional) timesteps, as diffusers' get_timestep_embedding.
at::Tensor timestep_embedding(const at::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos, double freq_shift);

// An LCM UNet's timestep_cond for guidance scale `guidance`, [1, dim] float32, as diffusers'
// get_guidance_scale_embedding: w = guidance - 1, [sin(1000 w f_i), cos(1000 w f_i)] with
// f_i = exp(-i ln(10000) / (dim/2 - 1)).
at::Tensor guidance_scale_embedding(double guidance, int64_t dim);

}  // namespace diffuse::models
