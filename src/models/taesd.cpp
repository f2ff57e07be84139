#include "models/taesd.h"

#include "models/layers.h"
#include "util/error.h"

namespace diffuse::models {

namespace {

Conv2d conv3x3(int64_t in, int64_t out, int64_t stride = 1, bool bias = true) {
  return Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(bias));
}

}  // namespace

TinyBlockImpl::TinyBlockImpl(int64_t in_channels, int64_t out_channels) {
  conv = torch::nn::Sequential(conv3x3(in_channels, out_channels), torch::nn::ReLU(),
                               conv3x3(out_channels, out_channels), torch::nn::ReLU(),
                               conv3x3(out_channels, out_channels));
  register_module("conv", conv);
  if (in_channels != out_channels) {
    skip = register_module("skip", Conv2d(torch::nn::Conv2dOptions(in_channels, out_channels, 1).bias(false)));
  }
}

at::Tensor TinyBlockImpl::forward(const at::Tensor& x) {
  auto y = conv->forward(x);
  y = skip ? y + skip(x) : y + x;
  return y.relu_();
}

TinyEncoderImpl::TinyEncoderImpl(const TinyAutoencoderConfig& c) {
  layers = torch::nn::Sequential();
  int64_t channels = c.in_channels;
  for (size_t level = 0; level < c.num_encoder_blocks.size(); ++level) {
    const int64_t out = c.encoder_block_out_channels[level];
    layers->push_back(level == 0 ? conv3x3(channels, out) : conv3x3(channels, out, 2, false));
    for (int i = 0; i < c.num_encoder_blocks[level]; ++i) layers->push_back(TinyBlock(out, out));
    channels = out;
  }
  layers->push_back(conv3x3(channels, c.latent_channels));
  register_module("layers", layers);
}

TinyDecoderImpl::TinyDecoderImpl(const TinyAutoencoderConfig& c) {
  layers = torch::nn::Sequential();
  int64_t channels = c.decoder_block_out_channels.front();
  layers->push_back(conv3x3(c.latent_channels, channels));
  layers->push_back(torch::nn::ReLU());
  const size_t levels = c.num_decoder_blocks.size();
  for (size_t level = 0; level < levels; ++level) {
    const int64_t width = c.decoder_block_out_channels[level];
    for (int i = 0; i < c.num_decoder_blocks[level]; ++i) {
      layers->push_back(TinyBlock(channels, width));
      channels = width;
    }
    const bool last = level + 1 == levels;
    if (!last) {
      layers->push_back(torch::nn::Upsample(torch::nn::UpsampleOptions()
                                                .scale_factor(std::vector<double>(2, c.upsampling_scaling_factor))
                                                .mode(torch::kNearest)));
    }
    layers->push_back(conv3x3(channels, last ? c.out_channels : channels, 1, last));
  }
  register_module("layers", layers);
}

TinyAutoencoderImpl::TinyAutoencoderImpl(const TinyAutoencoderConfig& c) : config(c) {
  if (c.has_encoder()) encoder = register_module("encoder", TinyEncoder(c));
  decoder = register_module("decoder", TinyDecoder(c));
}

at::Tensor TinyAutoencoderImpl::encode(const at::Tensor& image) {
  if (!encoder) throw InvalidParameter("vae", "this TAESD has no encoder (give taesd_encoder.safetensors beside the decoder)");
  return encoder->layers->forward(image.add(1).div(2));
}

at::Tensor TinyAutoencoderImpl::decode(const at::Tensor& latents) {
  const auto clamped = at::tanh(latents / 3) * 3;
  return decoder->layers->forward(clamped).mul(2).sub(1);
}

}  // namespace diffuse::models
