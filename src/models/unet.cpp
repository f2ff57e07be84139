#include "models/unet.h"

#include <cmath>

#include "util/error.h"

namespace diffuse::models {

namespace {

ResnetBlock2DImpl& resnet(const torch::nn::ModuleList& list, size_t i) { return *list->ptr(i)->as<ResnetBlock2DImpl>(); }
Transformer2DModelImpl& transformer(const torch::nn::ModuleList& list, size_t i) {
  return *list->ptr(i)->as<Transformer2DModelImpl>();
}

std::string shape_of(const at::Tensor& t) { return t.defined() ? c10::str(t.sizes()) : std::string("undefined"); }

// One row per batch item, or one row for every item.
at::Tensor rows_for_batch(const at::Tensor& t, int64_t batch, const char* name) {
  if (t.dim() != 2 || (t.size(0) != batch && t.size(0) != 1)) {
    throw Error(std::string("unet: added conditioning '") + name + "' has shape " + shape_of(t) + ", expected [" +
                std::to_string(batch) + ", n] (or [1, n])");
  }
  return t.size(0) == batch ? t : t.expand({batch, t.size(1)});
}

Transformer2DModel make_transformer(const UNetConfig& c, int level, int channels) {
  return Transformer2DModel(channels, c.num_heads[level], c.transformer_layers[level], c.cross_attention_dim,
                            c.norm_num_groups, c.use_linear_projection);
}

}  // namespace

torch::nn::Sequential timestep_embedding_mlp(int64_t in, int64_t out) {
  torch::nn::Sequential mlp;
  mlp->push_back("linear_1", Linear(in, out));
  mlp->push_back("act", torch::nn::SiLU());
  mlp->push_back("linear_2", Linear(out, out));
  return mlp;
}

at::Tensor timestep_embedding(const at::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos, double freq_shift) {
  const int64_t half = dim / 2;
  auto exponent = at::arange(0, half, at::TensorOptions().dtype(at::kFloat)) * (-std::log(10000.0));
  exponent = exponent / (static_cast<double>(half) - freq_shift);
  auto angles = timesteps.to(at::kFloat).unsqueeze(1) * exponent.exp().unsqueeze(0);
  auto sin = angles.sin(), cos = angles.cos();
  return flip_sin_to_cos ? at::cat({cos, sin}, -1) : at::cat({sin, cos}, -1);
}

at::Tensor guidance_scale_embedding(double guidance, int64_t dim) {
  const int64_t half = dim / 2;
  // float32 throughout, in diffusers' operation order.
  const auto w = at::tensor({static_cast<float>(guidance - 1.0)}) * 1000.0;
  const auto step = at::log(at::tensor(10000.0f)) / static_cast<double>(half - 1);
  const auto frequencies = at::exp(at::arange(half, at::kFloat) * -step);
  const auto angles = w.unsqueeze(1) * frequencies.unsqueeze(0);
  return at::cat({angles.sin(), angles.cos()}, 1);
}

DownBlockImpl::DownBlockImpl(const UNetConfig& c, int level) {
  const int out = c.block_out_channels[level];
  int in = level == 0 ? c.block_out_channels[0] : c.block_out_channels[level - 1];
  for (int i = 0; i < c.layers_per_block; ++i) {
    resnets->push_back(ResnetBlock2D(in, out, c.time_embed_dim(), c.norm_num_groups, c.norm_eps));
    if (c.cross_attention[level]) attentions->push_back(make_transformer(c, level, out));
    in = out;
  }
  register_module("resnets", resnets);
  if (c.cross_attention[level]) register_module("attentions", attentions);
  if (level + 1 < c.levels()) {
    downsamplers->push_back(Downsample2D(out, false));
    register_module("downsamplers", downsamplers);
  }
}

at::Tensor DownBlockImpl::forward(at::Tensor x, const at::Tensor& temb, const at::Tensor& context,
                                  std::vector<at::Tensor>& skips) {
  for (size_t i = 0; i < resnets->size(); ++i) {
    x = resnet(resnets, i).forward(x, temb);
    if (!attentions->is_empty()) x = transformer(attentions, i).forward(x, context);
    skips.push_back(x);
  }
  if (!downsamplers->is_empty()) {
    x = downsamplers[0]->as<Downsample2DImpl>()->forward(x);
    skips.push_back(x);
  }
  return x;
}

MidBlockImpl::MidBlockImpl(const UNetConfig& c) {
  const int channels = c.block_out_channels.back();
  const int level = c.levels() - 1;
  resnets->push_back(ResnetBlock2D(channels, channels, c.time_embed_dim(), c.norm_num_groups, c.norm_eps));
  attentions->push_back(make_transformer(c, level, channels));
  resnets->push_back(ResnetBlock2D(channels, channels, c.time_embed_dim(), c.norm_num_groups, c.norm_eps));
  register_module("attentions", attentions);
  register_module("resnets", resnets);
}

at::Tensor MidBlockImpl::forward(at::Tensor x, const at::Tensor& temb, const at::Tensor& context) {
  x = resnet(resnets, 0).forward(x, temb);
  x = transformer(attentions, 0).forward(x, context);
  return resnet(resnets, 1).forward(x, temb);
}

UpBlockImpl::UpBlockImpl(const UNetConfig& c, int index) {
  const int levels = c.levels();
  const int level = levels - 1 - index;  // the down level this block mirrors
  const int out = c.block_out_channels[level];
  const int previous = c.block_out_channels[std::min(levels - 1, level + 1)];  // channels coming from below
  const int skip_deepest = c.block_out_channels[std::max(0, level - 1)];       // the level above's output
  const int layers = c.layers_per_block + 1;
  for (int i = 0; i < layers; ++i) {
    const int skip = i == layers - 1 ? skip_deepest : out;
    const int in = i == 0 ? previous : out;
    resnets->push_back(ResnetBlock2D(in + skip, out, c.time_embed_dim(), c.norm_num_groups, c.norm_eps));
    if (c.cross_attention[level]) attentions->push_back(make_transformer(c, level, out));
  }
  if (c.cross_attention[level]) register_module("attentions", attentions);
  register_module("resnets", resnets);
  if (index + 1 < levels) {
    upsamplers->push_back(Upsample2D(out));
    register_module("upsamplers", upsamplers);
  }
}

at::Tensor UpBlockImpl::forward(at::Tensor x, const at::Tensor& temb, const at::Tensor& context,
                                std::vector<at::Tensor>& skips) {
  for (size_t i = 0; i < resnets->size(); ++i) {
    x = at::cat({x, skips.back()}, 1);
    skips.pop_back();
    x = resnet(resnets, i).forward(x, temb);
    if (!attentions->is_empty()) x = transformer(attentions, i).forward(x, context);
  }
  if (!upsamplers->is_empty()) {
    // Upsample to the next skip's size, which also covers latents whose side is not a power of two.
    const auto& next = skips.back();
    x = upsamplers[0]->as<Upsample2DImpl>()->forward(x, std::vector<int64_t>{next.size(2), next.size(3)});
  }
  return x;
}

UNet2DConditionModelImpl::UNet2DConditionModelImpl(const UNetConfig& c) : config(c) {
  const int first = c.block_out_channels.front();
  conv_in = register_module("conv_in", conv2d(c.in_channels, first, 3));
  time_embedding = register_module("time_embedding", timestep_embedding_mlp(first, c.time_embed_dim()));
  if (c.time_cond_proj_dim > 0) {
    // A child of time_embedding for its weight name; forward() applies it before the Sequential runs.
    time_cond_proj = time_embedding->register_module(
        "cond_proj", Linear(torch::nn::LinearOptions(c.time_cond_proj_dim, first).bias(false)));
  }
  if (c.text_time()) {
    add_embedding = register_module(
        "add_embedding", timestep_embedding_mlp(c.projection_class_embeddings_input_dim, c.time_embed_dim()));
  }
  for (int level = 0; level < c.levels(); ++level) down_blocks->push_back(DownBlock(c, level));
  register_module("down_blocks", down_blocks);
  mid_block = register_module("mid_block", MidBlock(c));
  for (int index = 0; index < c.levels(); ++index) up_blocks->push_back(UpBlock(c, index));
  register_module("up_blocks", up_blocks);
  conv_norm_out = register_module("conv_norm_out", group_norm(c.norm_num_groups, first, c.norm_eps));
  conv_out = register_module("conv_out", conv2d(first, c.out_channels, 3));
}

at::Tensor embed_timestep(const UNetConfig& config, torch::nn::Sequential time_embedding, Linear time_cond_proj,
                          torch::nn::Sequential add_embedding, const at::Tensor& sample, const at::Tensor& timestep,
                          const AddedConditioning* added, const at::Tensor& timestep_cond, const char* component) {
  const std::string who = component;
  const auto batch = sample.size(0);
  const auto timesteps = timestep.reshape({-1}).expand({batch});
  auto t_emb = timestep_embedding(timesteps, config.block_out_channels.front(), config.flip_sin_to_cos,
                                  config.freq_shift)
                   .to(sample.scalar_type());
  if (time_cond_proj) {
    if (!timestep_cond.defined()) {
      throw Error(who + ": this model (time_cond_proj_dim " + std::to_string(config.time_cond_proj_dim) +
                  ", an LCM model) needs timestep_cond, the guidance-scale embedding");
    }
    const auto rows = rows_for_batch(timestep_cond, batch, "timestep_cond");
    if (rows.size(1) != config.time_cond_proj_dim) {
      throw Error(who + ": timestep_cond has shape " + shape_of(timestep_cond) + ", expected [" +
                  std::to_string(batch) + ", " + std::to_string(config.time_cond_proj_dim) + "]");
    }
    t_emb = t_emb + time_cond_proj(rows.to(t_emb.scalar_type()));
  } else if (timestep_cond.defined()) {
    throw Error(who + ": timestep_cond (a guidance embedding) given to a model without time_cond_proj_dim");
  }
  auto temb = time_embedding->forward(t_emb);
  if (!config.text_time()) return temb;
  // diffusers: add_time_proj(time_ids.flatten()) -> [B, n * dim], concatenated after text_embeds,
  // cast to the embedding's type; the sinusoids themselves are computed in float32.
  if (added == nullptr || !added->text_embeds.defined() || !added->time_ids.defined()) {
    const bool no_text = added == nullptr || !added->text_embeds.defined();
    throw Error(who + ": this model (addition_embed_type 'text_time') needs the added conditioning: " +
                (no_text ? "'text_embeds' (the pooled text embedding)" : "'time_ids' (original size, crop, target size)") +
                " is missing");
  }
  const auto text_embeds = rows_for_batch(added->text_embeds, batch, "text_embeds");
  const auto time_ids = rows_for_batch(added->time_ids, batch, "time_ids");
  const int64_t width = text_embeds.size(1) + time_ids.size(1) * config.addition_time_embed_dim;
  if (width != config.projection_class_embeddings_input_dim) {
    throw Error(who + ": added conditioning 'text_embeds' " + shape_of(added->text_embeds) + " and 'time_ids' " +
                shape_of(added->time_ids) + " give " + std::to_string(text_embeds.size(1)) + " + " +
                std::to_string(time_ids.size(1)) + " x " + std::to_string(config.addition_time_embed_dim) + " = " +
                std::to_string(width) + " inputs, add_embedding takes " +
                std::to_string(config.projection_class_embeddings_input_dim));
  }
  auto time_embeds = timestep_embedding(time_ids.reshape({-1}), config.addition_time_embed_dim,
                                        config.flip_sin_to_cos, config.freq_shift)
                         .reshape({batch, -1});
  auto add_embeds = at::cat({text_embeds.to(time_embeds.scalar_type()), time_embeds}, -1).to(temb.scalar_type());
  return temb + add_embedding->forward(add_embeds);
}

namespace {

// Where a residual does not fit its feature, the error says which and how. A pooled residual
// ([B, C, 1, 1], global_pool_conditions) is broadcast over the feature.
at::Tensor add_residual(const at::Tensor& feature, const at::Tensor& residual, const std::string& what) {
  const bool pooled = residual.defined() && residual.dim() == 4 && residual.size(2) == 1 && residual.size(3) == 1 &&
                      residual.size(0) == feature.size(0) && residual.size(1) == feature.size(1);
  if (!residual.defined() || (!pooled && residual.sizes() != feature.sizes())) {
    throw Error("unet: control residual " + what + " has shape " + shape_of(residual) + ", the UNet's feature " +
                shape_of(feature));
  }
  return feature + residual.to(feature.scalar_type());
}

}  // namespace

at::Tensor UNet2DConditionModelImpl::forward(const at::Tensor& sample, const at::Tensor& timestep,
                                             const at::Tensor& context, const AddedConditioning* added,
                                             const at::Tensor& timestep_cond, const ControlResiduals* control) {
  const auto temb = embed_timestep(config, time_embedding, time_cond_proj, add_embedding, sample, timestep, added,
                                   timestep_cond, "unet");
  auto x = conv_in(sample);
  std::vector<at::Tensor> skips{x};
  for (const auto& block : *down_blocks) x = block->as<DownBlockImpl>()->forward(x, temb, context, skips);
  if (control) {
    if (control->down.size() != skips.size()) {
      throw Error("unet: " + std::to_string(control->down.size()) + " control residuals for " +
                  std::to_string(skips.size()) + " skip connections");
    }
    for (size_t i = 0; i < skips.size(); ++i) skips[i] = add_residual(skips[i], control->down[i], std::to_string(i));
  }
  x = mid_block->forward(x, temb, context);
  if (control) x = add_residual(x, control->mid, "mid");
  for (const auto& block : *up_blocks) x = block->as<UpBlockImpl>()->forward(x, temb, context, skips);
  return conv_out(normalize_silu(conv_norm_out, x));
}

}  // namespace diffuse::models
