#include "flop_count.h"

#include <algorithm>
#include <vector>

namespace diffuse::bench {

FlopCount& FlopCount::operator+=(const FlopCount& other) {
  convolution += other.convolution;
  linear += other.linear;
  attention += other.attention;
  return *this;
}

namespace {

// Output pixels (or tokens) of one image and the batch size, for every layer below.
struct Grid {
  int64_t batch, height, width;
  double pixels() const { return double(batch) * double(height) * double(width); }
  Grid half() const { return {batch, (height + 1) / 2, (width + 1) / 2}; }
  Grid twice() const { return {batch, height * 2, width * 2}; }
};

double conv(int64_t in, int64_t out, int64_t kernel, const Grid& output) {
  return 2.0 * double(in) * double(out) * double(kernel * kernel) * output.pixels();
}
double linear(int64_t in, int64_t out, double rows) { return 2.0 * double(in) * double(out) * rows; }

// ResnetBlock2D: two 3x3 convs, a 1x1 shortcut when channels change, the timestep projection.
FlopCount resnet(int64_t in, int64_t out, int64_t temb, const Grid& grid) {
  FlopCount f;
  f.convolution = conv(in, out, 3, grid) + conv(out, out, 3, grid) + (in != out ? conv(in, out, 1, grid) : 0.0);
  f.linear = temb > 0 ? linear(temb, out, double(grid.batch)) : 0.0;
  return f;
}

// Multi-head attention core: scores (N x M x width) and weighted values, the same again.
double attention_products(double queries, double keys, int64_t width, int64_t batch) {
  return 2.0 * 2.0 * queries * keys * double(width) * double(batch);
}

// Transformer2DModel: proj_in, `layers` x (self-attention, cross-attention, GEGLU feed-forward), proj_out.
FlopCount spatial_transformer(int64_t c, int64_t layers, int64_t context_dim, int64_t context_tokens, bool linear_proj,
                              const Grid& grid) {
  FlopCount f;
  const double tokens = grid.pixels();
  const double projections = 2 * (linear_proj ? linear(c, c, tokens) : conv(c, c, 1, grid));
  (linear_proj ? f.linear : f.convolution) += projections;
  const double n = double(grid.height * grid.width);
  for (int64_t i = 0; i < layers; ++i) {
    f.linear += 4 * linear(c, c, tokens);                                       // attn1 q, k, v, out
    f.linear += 2 * linear(c, c, tokens) + 2 * linear(context_dim, c, double(context_tokens * grid.batch));  // attn2
    f.linear += linear(c, 8 * c, tokens) + linear(4 * c, c, tokens);           // GEGLU in, out
    f.attention += attention_products(n, n, c, grid.batch) + attention_products(n, double(context_tokens), c, grid.batch);
  }
  return f;
}

// The VAE's single-head mid-block attention: four c x c projections and the products.
FlopCount vae_attention(int64_t c, const Grid& grid) {
  FlopCount f;
  const double n = double(grid.height * grid.width);
  f.linear = 4 * linear(c, c, grid.pixels());
  f.attention = attention_products(n, n, c, grid.batch);
  return f;
}

}  // namespace

FlopCount unet_flops(const models::UNetConfig& config, int64_t batch, int64_t latent_height, int64_t latent_width,
                     int64_t context_tokens) {
  const auto& channels = config.block_out_channels;
  const int levels = config.levels();
  const int64_t temb = config.time_embed_dim();
  Grid grid{batch, latent_height, latent_width};
  FlopCount f;
  f.linear += linear(channels.front(), temb, double(batch)) + linear(temb, temb, double(batch));
  f.convolution += conv(config.in_channels, channels.front(), 3, grid);
  const auto transformer = [&](int level, int64_t c, const Grid& g) {
    return spatial_transformer(c, config.transformer_layers[level], config.cross_attention_dim, context_tokens,
                               config.use_linear_projection, g);
  };

  std::vector<int64_t> skips{channels.front()};  // channels of every skip connection, in push order
  for (int level = 0; level < levels; ++level) {
    const int64_t out = channels[level];
    for (int j = 0; j < config.layers_per_block; ++j) {
      f += resnet(j == 0 ? skips.back() : out, out, temb, grid);
      if (config.cross_attention[level]) f += transformer(level, out, grid);
      skips.push_back(out);
    }
    if (level + 1 < levels) {
      grid = grid.half();
      f.convolution += conv(out, out, 3, grid);
      skips.push_back(out);
    }
  }

  const int64_t bottom = channels.back();
  f += resnet(bottom, bottom, temb, grid);
  f += transformer(levels - 1, bottom, grid);
  f += resnet(bottom, bottom, temb, grid);

  int64_t previous = bottom;
  for (int up = 0; up < levels; ++up) {
    const int level = levels - 1 - up;  // the down level this up level mirrors
    const int64_t out = channels[level];
    for (int j = 0; j <= config.layers_per_block; ++j) {
      const int64_t skip = skips.back();
      skips.pop_back();
      f += resnet(previous + skip, out, temb, grid);
      if (config.cross_attention[level]) f += transformer(level, out, grid);
      previous = out;
    }
    if (up + 1 < levels) {
      grid = grid.twice();
      f.convolution += conv(out, out, 3, grid);
    }
  }
  f.convolution += conv(channels.front(), config.out_channels, 3, grid);
  return f;
}

FlopCount vae_decode_flops(const models::VaeConfig& config, int64_t batch, int64_t latent_height, int64_t latent_width) {
  const auto& channels = config.block_out_channels;
  const int levels = static_cast<int>(channels.size());
  Grid grid{batch, latent_height, latent_width};
  FlopCount f;
  f.convolution += conv(config.latent_channels, config.latent_channels, 1, grid);  // post_quant_conv
  int64_t c = channels.back();
  f.convolution += conv(config.latent_channels, c, 3, grid);
  f += resnet(c, c, 0, grid);
  f += vae_attention(c, grid);
  f += resnet(c, c, 0, grid);
  for (int up = 0; up < levels; ++up) {
    const int64_t out = channels[levels - 1 - up];
    for (int j = 0; j <= config.layers_per_block; ++j) {
      f += resnet(c, out, 0, grid);
      c = out;
    }
    if (up + 1 < levels) {
      grid = grid.twice();
      f.convolution += conv(c, c, 3, grid);
    }
  }
  f.convolution += conv(c, config.out_channels, 3, grid);
  return f;
}

FlopCount taesd_decode_flops(const models::TinyAutoencoderConfig& config, int64_t batch, int64_t latent_height,
                             int64_t latent_width) {
  Grid grid{batch, latent_height, latent_width};
  FlopCount f;
  int64_t c = config.decoder_block_out_channels.front();
  f.convolution += conv(config.latent_channels, c, 3, grid);
  const size_t levels = config.num_decoder_blocks.size();
  for (size_t level = 0; level < levels; ++level) {
    const int64_t width = config.decoder_block_out_channels[level];
    for (int i = 0; i < config.num_decoder_blocks[level]; ++i) {
      f.convolution += conv(c, width, 3, grid) + 2 * conv(width, width, 3, grid);
      if (c != width) f.convolution += conv(c, width, 1, grid);
      c = width;
    }
    const bool last = level + 1 == levels;
    if (!last) grid = grid.twice();
    f.convolution += conv(c, last ? config.out_channels : c, 3, grid);
  }
  return f;
}

FlopCount rrdbnet_flops(const models::RrdbNetConfig& config, int64_t batch, int64_t height, int64_t width) {
  const int64_t unshuffle = config.unshuffle_factor();
  Grid grid{batch, height / unshuffle, width / unshuffle};
  const int64_t nf = config.num_feat, gc = config.num_grow_ch;
  FlopCount f;
  f.convolution += conv(config.conv_first_in_channels(), nf, 3, grid);
  double dense_block = conv(nf + 4 * gc, nf, 3, grid);
  for (int64_t k = 0; k < 4; ++k) dense_block += conv(nf + k * gc, gc, 3, grid);
  f.convolution += 3.0 * double(config.num_block) * dense_block + conv(nf, nf, 3, grid);
  for (int i = 0; i < config.upsamplings; ++i) {
    grid = grid.twice();
    f.convolution += conv(nf, nf, 3, grid);
  }
  f.convolution += conv(nf, nf, 3, grid) + conv(nf, config.num_out_ch, 3, grid);
  return f;
}

FlopCount text_encoder_flops(const models::TextEncoderConfig& config, int64_t batch, int64_t tokens) {
  FlopCount f;
  const double rows = double(batch * tokens);
  const int64_t d = config.hidden_size;
  for (int i = 0; i < config.num_layers; ++i) {
    f.linear += 4 * linear(d, d, rows) + 2 * linear(d, config.intermediate_size, rows);
    f.attention += attention_products(double(tokens), double(tokens), d, batch);
  }
  return f;
}

}  // namespace diffuse::bench
