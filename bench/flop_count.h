// Work of one network evaluation, counted from its config: 2 FLOPs per multiply-add of every
// convolution, linear layer and attention matrix product. Norms, activations, softmax and
// element-wise adds are left out: they are memory-bound and a few percent of the total, and every
// published SD FLOP figure leaves them out too.
#pragma once
#include <cstdint>

#include "models/config.h"
#include "models/rrdbnet.h"

namespace diffuse::bench {

struct FlopCount {
  double convolution = 0;
  double linear = 0;
  double attention = 0;  // q kᵀ and softmax(.) v
  double total() const { return convolution + linear + attention; }
  FlopCount& operator+=(const FlopCount& other);
};

// One UNet evaluation on `batch` latents of latent_height x latent_width (a CFG step is batch 2)
// with `context_tokens` tokens of conditioning.
FlopCount unet_flops(const models::UNetConfig& config, int64_t batch, int64_t latent_height, int64_t latent_width,
                     int64_t context_tokens = 77);

// The VAE decoder (post_quant_conv included) from a latent_height x latent_width latent.
FlopCount vae_decode_flops(const models::VaeConfig& config, int64_t batch, int64_t latent_height,
                           int64_t latent_width);

// TAESD's decoder (AutoencoderTiny) from a latent_height x latent_width latent.
FlopCount taesd_decode_flops(const models::TinyAutoencoderConfig& config, int64_t batch, int64_t latent_height,
                             int64_t latent_width);

// RRDBNet (ESRGAN / Real-ESRGAN) on `batch` images of height x width input pixels.
FlopCount rrdbnet_flops(const models::RrdbNetConfig& config, int64_t batch, int64_t height, int64_t width);

// The text encoder on `batch` sequences of `tokens` tokens.
FlopCount text_encoder_flops(const models::TextEncoderConfig& config, int64_t batch, int64_t tokens = 77);

}  // namespace diffuse::bench
