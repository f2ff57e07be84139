#pragma once
// RRDBNet, the ESRGAN family's super-resolution network (ESRGAN, Real-ESRGAN x4plus / x2plus / anime
// 6B, and the community 4x models that keep ESRGAN's layout), built from a config: nothing about
// Real-ESRGAN's sizes is written here but as defaults. Its module tree carries BasicSR's weight names
// (conv_first, body.<b>.rdb<k>.conv<j>, conv_body, conv_up<i>, conv_hr, conv_last); io/upscaler_files.h
// maps the original ESRGAN layout onto them.
#include <torch/torch.h>

#include "models/conv.h"
#include "util/tensor_map.h"

namespace diffuse::models {

struct RrdbNetConfig {
  int num_in_ch = 3;
  int num_out_ch = 3;
  int scale = 4;  // output pixels per input pixel along a side
  int num_feat = 64;
  int num_block = 23;
  int num_grow_ch = 32;
  // Nearest x2 + conv steps before the HR conv. BasicSR always has 2 and reaches scales 2 and 1 by
  // pixel-unshuffling the input first (x2plus: conv_first sees 12 channels); ESRGAN's own layout has
  // log2(scale) of them and no unshuffle.
  int upsamplings = 2;

  // 2^upsamplings / scale: 1 (none), 2 or 4. Input sides must be multiples of it.
  int unshuffle_factor() const;
  int conv_first_in_channels() const { return num_in_ch * unshuffle_factor() * unshuffle_factor(); }
  // Throws diffuse::InvalidParameter naming the field for a size the network cannot be built with.
  void validate() const;
  int64_t parameter_count() const;

  // From BasicSR-named tensors (io/upscaler_files.h renames the other layout): the widths from
  // conv_first and conv_last, the blocks from body.<b>, the upsamplings from conv_up<i>, the scale
  // from how many channels conv_first takes per output channel. Throws diffuse::Error naming `source`
  // and the tensor that is missing or has an impossible shape.
  static RrdbNetConfig infer(const TensorMap& weights, const std::string& source);
};

// Residual dense block: five 3x3 convs, each seeing the input and every earlier output.
struct ResidualDenseBlockImpl : torch::nn::Module {
  ResidualDenseBlockImpl(int64_t num_feat, int64_t num_grow_ch);
  at::Tensor forward(const at::Tensor& x);

  Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr}, conv4{nullptr}, conv5{nullptr};
};
TORCH_MODULE(ResidualDenseBlock);

// Residual in residual dense block: three dense blocks in a row, scaled by 0.2 onto the input.
struct RrdbImpl : torch::nn::Module {
  RrdbImpl(int64_t num_feat, int64_t num_grow_ch);
  at::Tensor forward(const at::Tensor& x);

  ResidualDenseBlock rdb1{nullptr}, rdb2{nullptr}, rdb3{nullptr};
};
TORCH_MODULE(Rrdb);

struct RrdbNetImpl : torch::nn::Module {
  explicit RrdbNetImpl(const RrdbNetConfig& config);
  // [B, num_in_ch, H, W], H and W multiples of unshuffle_factor() -> [B, num_out_ch, H*scale, W*scale],
  // not clamped. The values Real-ESRGAN feeds are in [0, 1].
  at::Tensor forward(const at::Tensor& x);

  RrdbNetConfig config;
  Conv2d conv_first{nullptr};
  torch::nn::Sequential body{nullptr};
  Conv2d conv_body{nullptr};
  std::vector<Conv2d> conv_up;  // conv_up1, conv_up2, ...
  Conv2d conv_hr{nullptr};
  Conv2d conv_last{nullptr};
};
TORCH_MODULE(RrdbNet);

}  // namespace diffuse::models
