#include "models/controlnet.h"

#include "util/error.h"

namespace diffuse::models {

namespace {

std::string sizes_text(const at::Tensor& t) { return t.defined() ? c10::str(t.sizes()) : std::string("undefined"); }

}  // namespace

std::vector<double> guess_mode_scales(size_t residuals, double scale) {
  // float32 as torch.logspace makes them, then scaled in float32 as diffusers does.
  const auto ramp = at::logspace(-1, 0, static_cast<int64_t>(residuals), 10.0, at::kFloat) * scale;
  std::vector<double> scales;
  for (int64_t i = 0; i < ramp.size(0); ++i) scales.push_back(ramp[i].item<float>());
  return scales;
}

ControlNetConditioningEmbeddingImpl::ControlNetConditioningEmbeddingImpl(int conditioning_channels,
                                                                         const std::vector<int>& widths,
                                                                         int out_channels) {
  conv_in = register_module("conv_in", conv2d(conditioning_channels, widths.front(), 3));
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    blocks->push_back(conv2d(widths[i], widths[i], 3));
    blocks->push_back(conv2d(widths[i], widths[i + 1], 3, /*stride=*/2));
  }
  register_module("blocks", blocks);
  conv_out = register_module("conv_out", conv2d(widths.back(), out_channels, 3));
}

at::Tensor ControlNetConditioningEmbeddingImpl::forward(const at::Tensor& image) {
  auto x = at::silu(conv_in(image));
  for (const auto& block : *blocks) x = at::silu(block->as<Conv2dImpl>()->forward(x));
  return conv_out(x);
}

ControlNetModelImpl::ControlNetModelImpl(const ControlNetConfig& c) : config(c) {
  const UNetConfig& u = c.unet;
  const int first = u.block_out_channels.front();
  conv_in = register_module("conv_in", conv2d(u.in_channels, first, 3));
  time_embedding = register_module("time_embedding", timestep_embedding_mlp(first, u.time_embed_dim()));
  if (u.time_cond_proj_dim > 0) throw Error("controlnet: time_cond_proj_dim (an LCM guidance embedding) is not supported");
  if (u.text_time()) {
    add_embedding = register_module(
        "add_embedding", timestep_embedding_mlp(u.projection_class_embeddings_input_dim, u.time_embed_dim()));
  }
  controlnet_cond_embedding = register_module(
      "controlnet_cond_embedding",
      ControlNetConditioningEmbedding(c.conditioning_channels, c.conditioning_embedding_out_channels, first));
  // One zero conv per skip feature the down path makes: conv_in's, each res block's, each downsampler's.
  controlnet_down_blocks->push_back(conv2d(first, first, 1));
  for (int level = 0; level < u.levels(); ++level) {
    down_blocks->push_back(DownBlock(u, level));
    const int width = u.block_out_channels[level];
    const int features = u.layers_per_block + (level + 1 < u.levels() ? 1 : 0);
    for (int i = 0; i < features; ++i) controlnet_down_blocks->push_back(conv2d(width, width, 1));
  }
  register_module("down_blocks", down_blocks);
  register_module("controlnet_down_blocks", controlnet_down_blocks);
  const int deepest = u.block_out_channels.back();
  mid_block = register_module("mid_block", MidBlock(u));
  controlnet_mid_block = register_module("controlnet_mid_block", conv2d(deepest, deepest, 1));
}

at::Tensor ControlNetModelImpl::embed_hint(const at::Tensor& image, const at::Tensor& sample) {
  const int64_t factor = config.hint_downscale_factor();
  if (image.dim() != 4 || image.size(1) != config.conditioning_channels || image.size(2) != sample.size(2) * factor ||
      image.size(3) != sample.size(3) * factor || (image.size(0) != sample.size(0) && image.size(0) != 1)) {
    throw Error("controlnet: control image has shape " + sizes_text(image) + ", expected [" +
                std::to_string(sample.size(0)) + ", " + std::to_string(config.conditioning_channels) + ", " +
                std::to_string(sample.size(2) * factor) + ", " + std::to_string(sample.size(3) * factor) +
                "] for latents " + sizes_text(sample) + " (its hint encoder downsamples x" + std::to_string(factor) +
                ")");
  }
  auto input = config.conditioning_channel_order == "bgr" ? image.flip({1}) : image;
  return controlnet_cond_embedding->forward(input.to(sample.scalar_type()));
}

ControlResiduals ControlNetModelImpl::forward(const at::Tensor& sample, const at::Tensor& timestep,
                                              const at::Tensor& context, const at::Tensor& image,
                                              const ControlStrength& strength, const AddedConditioning* added) {
  const auto temb = embed_timestep(config.unet, time_embedding, Linear(nullptr), add_embedding, sample, timestep,
                                   added, at::Tensor(), "controlnet");
  auto hint = embed_hint(image, sample);
  if (hint.size(0) != sample.size(0)) hint = hint.expand({sample.size(0), -1, -1, -1});
  auto x = conv_in(sample) + hint;
  std::vector<at::Tensor> features{x};
  for (const auto& block : *down_blocks) x = block->as<DownBlockImpl>()->forward(x, temb, context, features);
  x = mid_block->forward(x, temb, context);

  ControlResiduals residuals;
  for (size_t i = 0; i < features.size(); ++i) {
    residuals.down.push_back(controlnet_down_blocks[i]->as<Conv2dImpl>()->forward(features[i]));
  }
  residuals.mid = controlnet_mid_block(x);
  if (strength.guess_mode && !config.global_pool_conditions) {
    const auto scales = guess_mode_scales(residuals.down.size() + 1, strength.scale);
    for (size_t i = 0; i < residuals.down.size(); ++i) residuals.down[i] = residuals.down[i] * scales[i];
    residuals.mid = residuals.mid * scales.back();
  } else {
    for (auto& residual : residuals.down) residual = residual * strength.scale;
    residuals.mid = residuals.mid * strength.scale;
  }
  if (config.global_pool_conditions) {
    for (auto& residual : residuals.down) residual = residual.mean({2, 3}, /*keepdim=*/true);
    residuals.mid = residuals.mid.mean({2, 3}, /*keepdim=*/true);
  }
  return residuals;
}

}  // namespace diffuse::models
