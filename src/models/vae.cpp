#include "models/vae.h"

#include <algorithm>

namespace diffuse::models {

namespace {

constexpr double kVaeEps = 1e-6;

ResnetBlock2D vae_resnet(int64_t in, int64_t out, int64_t groups) { return ResnetBlock2D(in, out, 0, groups, kVaeEps); }

at::Tensor run_resnets(const torch::nn::ModuleList& resnets, at::Tensor x) {
  for (const auto& block : *resnets) x = block->as<ResnetBlock2DImpl>()->forward(x);
  return x;
}

}  // namespace

VaeAttentionImpl::VaeAttentionImpl(int64_t channels, int64_t groups) {
  group_norm = register_module("group_norm", models::group_norm(groups, channels, kVaeEps));
  attention = Attention(channels, channels, 1, channels, true);
  // The projections sit directly on this module in diffusers' naming (to_q, to_k, to_v, to_out.0).
  for (const auto& child : attention->named_children()) register_module(child.key(), child.value());
}

at::Tensor VaeAttentionImpl::forward(const at::Tensor& x) {
  const auto b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  auto tokens = normalize(group_norm, x).reshape({b, c, h * w}).transpose(1, 2);
  auto out = attention(tokens).transpose(1, 2).reshape({b, c, h, w});
  return out + x;
}

VaeMidBlockImpl::VaeMidBlockImpl(int64_t channels, int64_t groups) {
  resnets->push_back(vae_resnet(channels, channels, groups));
  resnets->push_back(vae_resnet(channels, channels, groups));
  attentions->push_back(VaeAttention(channels, groups));
  register_module("resnets", resnets);
  register_module("attentions", attentions);
}

at::Tensor VaeMidBlockImpl::forward(at::Tensor x) {
  x = resnets[0]->as<ResnetBlock2DImpl>()->forward(x);
  x = attentions[0]->as<VaeAttentionImpl>()->forward(x);
  return resnets[1]->as<ResnetBlock2DImpl>()->forward(x);
}

VaeLevelImpl::VaeLevelImpl(int64_t in, int64_t out, int layers, int64_t groups, bool downsample, bool upsample) {
  for (int i = 0; i < layers; ++i) {
    resnets->push_back(vae_resnet(i == 0 ? in : out, out, groups));
  }
  register_module("resnets", resnets);
  if (downsample) {
    downsamplers->push_back(Downsample2D(out, true));
    register_module("downsamplers", downsamplers);
  }
  if (upsample) {
    upsamplers->push_back(Upsample2D(out));
    register_module("upsamplers", upsamplers);
  }
}

at::Tensor VaeLevelImpl::forward(at::Tensor x) {
  x = run_resnets(resnets, x);
  if (!downsamplers->is_empty()) x = downsamplers[0]->as<Downsample2DImpl>()->forward(x);
  if (!upsamplers->is_empty()) x = upsamplers[0]->as<Upsample2DImpl>()->forward(x);
  return x;
}

EncoderImpl::EncoderImpl(const VaeConfig& c) {
  const auto& channels = c.block_out_channels;
  const size_t levels = channels.size();
  conv_in = register_module("conv_in", conv2d(c.in_channels, channels.front(), 3));
  for (size_t level = 0; level < levels; ++level) {
    const int64_t in = channels[level == 0 ? 0 : level - 1];
    down_blocks->push_back(
        VaeLevel(in, channels[level], c.layers_per_block, c.norm_num_groups, level + 1 < levels, false));
  }
  register_module("down_blocks", down_blocks);
  mid_block = register_module("mid_block", VaeMidBlock(channels.back(), c.norm_num_groups));
  conv_norm_out = register_module("conv_norm_out", group_norm(c.norm_num_groups, channels.back(), kVaeEps));
  conv_out = register_module("conv_out", conv2d(channels.back(), 2 * c.latent_channels, 3));
}

at::Tensor EncoderImpl::forward(const at::Tensor& image) {
  auto x = conv_in(image);
  for (const auto& block : *down_blocks) x = block->as<VaeLevelImpl>()->forward(x);
  x = mid_block->forward(x);
  return conv_out(normalize_silu(conv_norm_out, x));
}

DecoderImpl::DecoderImpl(const VaeConfig& c) {
  const auto& channels = c.block_out_channels;
  const size_t levels = channels.size();
  conv_in = register_module("conv_in", conv2d(c.latent_channels, channels.back(), 3));
  mid_block = register_module("mid_block", VaeMidBlock(channels.back(), c.norm_num_groups));
  for (size_t index = 0; index < levels; ++index) {
    const int64_t in = channels[levels - (index == 0 ? 1 : index)];
    const int64_t out = channels[levels - 1 - index];
    up_blocks->push_back(VaeLevel(in, out, c.layers_per_block + 1, c.norm_num_groups, false, index + 1 < levels));
  }
  register_module("up_blocks", up_blocks);
  conv_norm_out = register_module("conv_norm_out", group_norm(c.norm_num_groups, channels.front(), kVaeEps));
  conv_out = register_module("conv_out", conv2d(channels.front(), c.out_channels, 3));
}

at::Tensor DecoderImpl::forward(const at::Tensor& latent) {
  auto x = mid_block->forward(conv_in(latent));
  for (const auto& block : *up_blocks) x = block->as<VaeLevelImpl>()->forward(x);
  return conv_out(normalize_silu(conv_norm_out, x));
}

at::Tensor LatentDistribution::sample(at::Generator& generator) const {
  return mean + std * at::randn(mean.sizes(), generator, mean.options());
}

AutoencoderKLImpl::AutoencoderKLImpl(const VaeConfig& c) : config(c) {
  encoder = register_module("encoder", Encoder(c));
  decoder = register_module("decoder", Decoder(c));
  quant_conv = register_module("quant_conv", conv2d(2 * c.latent_channels, 2 * c.latent_channels, 1));
  post_quant_conv = register_module("post_quant_conv", conv2d(c.latent_channels, c.latent_channels, 1));
}

LatentDistribution AutoencoderKLImpl::encode(const at::Tensor& image) {
  auto moments = quant_conv(encoder(image)).chunk(2, 1);
  LatentDistribution d;
  d.mean = moments[0];
  d.logvar = moments[1].clamp(-30.0, 20.0);
  d.std = (0.5 * d.logvar).exp();
  return d;
}

at::Tensor AutoencoderKLImpl::decode(const at::Tensor& latent) { return decoder(post_quant_conv(latent)); }

namespace {

// Cross-fades the first `extent` rows (dim 2) or columns (dim 3) of `b` from the last ones of `a`.
void blend_edge(const at::Tensor& a, at::Tensor& b, int64_t dim, int64_t extent) {
  extent = std::min({extent, a.size(dim), b.size(dim)});
  if (extent <= 0) return;
  auto ramp = at::arange(extent, b.options()).div_(static_cast<double>(extent));
  ramp = dim == 2 ? ramp.view({1, 1, extent, 1}) : ramp.view({1, 1, 1, extent});
  auto head = b.narrow(dim, 0, extent);
  const auto tail = a.narrow(dim, a.size(dim) - extent, extent);
  head.copy_(tail * (1 - ramp) + head * ramp);
}

}  // namespace

int64_t AutoencoderKLImpl::tile_latents() const {
  return std::min<int64_t>(config.sample_size, kMaxTilePixels) / config.downscale_factor();
}

int AutoencoderKLImpl::tile_count(int64_t latent_height, int64_t latent_width) const {
  const int64_t tile = tile_latents();
  if (latent_height <= tile && latent_width <= tile) return 1;
  const int64_t stride = tile * 3 / 4;
  const auto along = [&](int64_t extent) { return (extent + stride - 1) / stride; };
  return static_cast<int>(along(latent_height) * along(latent_width));
}

at::Tensor AutoencoderKLImpl::decode_tiled(const at::Tensor& z, const std::function<void(int, int)>& on_tile) {
  const int64_t factor = config.downscale_factor();
  const int64_t tile = tile_latents();
  const int64_t stride = tile * 3 / 4;
  const int64_t pixel_tile = tile * factor;
  const int64_t blend = pixel_tile / 4, keep = pixel_tile - blend;
  const int total = tile_count(z.size(2), z.size(3));
  int done = 0;
  std::vector<std::vector<at::Tensor>> rows;
  for (int64_t i = 0; i < z.size(2); i += stride) {
    auto& row = rows.emplace_back();
    for (int64_t j = 0; j < z.size(3); j += stride) {
      row.push_back(decode(z.slice(2, i, i + tile).slice(3, j, j + tile)).to(at::kFloat));
      if (on_tile) on_tile(++done, total);
    }
  }
  std::vector<at::Tensor> joined_rows;
  for (size_t r = 0; r < rows.size(); ++r) {
    std::vector<at::Tensor> pieces;
    for (size_t c = 0; c < rows[r].size(); ++c) {
      auto& piece = rows[r][c];
      if (r > 0) blend_edge(rows[r - 1][c], piece, 2, blend);
      if (c > 0) blend_edge(rows[r][c - 1], piece, 3, blend);
      pieces.push_back(piece.slice(2, 0, keep).slice(3, 0, keep));
    }
    joined_rows.push_back(at::cat(pieces, 3));
  }
  return at::cat(joined_rows, 2).slice(2, 0, z.size(2) * factor).slice(3, 0, z.size(3) * factor).contiguous();
}

}  // namespace diffuse::models
