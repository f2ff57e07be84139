#include "models/rrdbnet.h"

#include <algorithm>
#include <optional>

#include "util/error.h"
#include "util/strings.h"

namespace diffuse::models {

namespace {

constexpr double kLeakySlope = 0.2;
constexpr double kResidualScale = 0.2;  // ESRGAN's residual scaling, in each dense block and each RRDB

Conv2d rrdb_conv3x3(int64_t in, int64_t out) {
  return Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(1).padding(1).bias(true));
}

at::Tensor rrdb_leaky(at::Tensor x) { return at::leaky_relu_(x, kLeakySlope); }

// x * 0.2 + residual with the reference's two roundings (a fused multiply-add would round once).
at::Tensor rrdb_scaled_residual(at::Tensor x, const at::Tensor& residual) { return x.mul_(kResidualScale).add_(residual); }

// The 4-D weight `name`, or an error naming it and the file.
const at::Tensor& rrdb_conv_weight(const TensorMap& weights, const std::string& name, const std::string& source) {
  const auto found = weights.find(name);
  if (found == weights.end()) throw Error(source + ": tensor '" + name + "' is missing, cannot infer the RRDBNet");
  if (found->second.dim() != 4) {
    throw Error(source + ": tensor '" + name + "' has " + std::to_string(found->second.dim()) +
                " dimensions, a convolution weight has 4");
  }
  return found->second;
}

// body.<b>.* -> b.
std::optional<int> rrdb_body_index(const std::string& name) {
  if (!starts_with(name, "body.")) return std::nullopt;
  const auto dot = name.find('.', 5);
  const auto digits = name.substr(5, dot == std::string::npos ? std::string::npos : dot - 5);
  if (digits.empty() || digits.size() > 6 || digits.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  return std::stoi(digits);
}

}  // namespace

int RrdbNetConfig::unshuffle_factor() const { return (1 << upsamplings) / scale; }

void RrdbNetConfig::validate() const {
  const auto positive = [](const char* field, int value) {
    if (value < 1) throw InvalidParameter(field, std::to_string(value) + " must be at least 1");
  };
  positive("num_in_ch", num_in_ch);
  positive("num_out_ch", num_out_ch);
  positive("num_feat", num_feat);
  positive("num_grow_ch", num_grow_ch);
  if (num_block < 0) throw InvalidParameter("num_block", std::to_string(num_block) + " must not be negative");
  if (upsamplings < 1 || upsamplings > 4) {
    throw InvalidParameter("upsamplings", std::to_string(upsamplings) + " is not between 1 and 4");
  }
  const int upsampled = 1 << upsamplings;
  if (scale < 1 || upsampled % scale != 0 || (upsampled / scale != 1 && upsampled / scale != 2 && upsampled / scale != 4)) {
    throw InvalidParameter("scale", std::to_string(scale) + " cannot be made from " + std::to_string(upsamplings) +
                                        " x2 upsamplings and a pixel unshuffle of 1, 2 or 4");
  }
}

int64_t RrdbNetConfig::parameter_count() const {
  const auto conv = [](int64_t in, int64_t out) { return in * out * 9 + out; };
  int64_t dense = 0;
  for (int k = 0; k < 4; ++k) dense += conv(num_feat + k * num_grow_ch, num_grow_ch);
  dense += conv(num_feat + 4 * num_grow_ch, num_feat);
  return conv(conv_first_in_channels(), num_feat) + num_block * 3 * dense + conv(num_feat, num_feat) * (upsamplings + 2) +
         conv(num_feat, num_out_ch);
}

RrdbNetConfig RrdbNetConfig::infer(const TensorMap& weights, const std::string& source) {
  RrdbNetConfig c;
  const auto& first = rrdb_conv_weight(weights, "conv_first.weight", source);
  const auto& last = rrdb_conv_weight(weights, "conv_last.weight", source);
  c.num_feat = static_cast<int>(first.size(0));
  c.num_out_ch = static_cast<int>(last.size(0));
  c.upsamplings = 0;
  while (weights.count("conv_up" + std::to_string(c.upsamplings + 1) + ".weight")) ++c.upsamplings;
  if (c.upsamplings == 0) throw Error(source + ": tensor 'conv_up1.weight' is missing, cannot infer the RRDBNet");
  if (c.upsamplings > 4) throw Error(source + ": " + std::to_string(c.upsamplings) + " upsampling convolutions (at most 4 are read)");
  // Real-ESRGAN's rule: the input has as many channels as the output; conv_first takes r*r times that
  // after a pixel unshuffle by r.
  const int64_t in = first.size(1);
  const int64_t per_output = c.num_out_ch > 0 && in % c.num_out_ch == 0 ? in / c.num_out_ch : 0;
  int unshuffle = 0;
  for (int r : {1, 2, 4}) {
    if (per_output == r * r) unshuffle = r;
  }
  if (unshuffle == 0 || unshuffle > (1 << c.upsamplings)) {
    throw Error(source + ": tensor 'conv_first.weight' takes " + std::to_string(in) + " channels for " +
                std::to_string(c.num_out_ch) + " output channels (conv_last.weight); an RRDBNet takes 1, 4 or 16 times as many");
  }
  c.num_in_ch = c.num_out_ch;
  c.scale = (1 << c.upsamplings) / unshuffle;
  int blocks = 0;
  for (const auto& [name, tensor] : weights) {
    if (const auto b = rrdb_body_index(name)) blocks = std::max(blocks, *b + 1);
  }
  c.num_block = blocks;
  c.num_grow_ch = blocks > 0 ? static_cast<int>(rrdb_conv_weight(weights, "body.0.rdb1.conv1.weight", source).size(0)) : 32;
  try {
    c.validate();
  } catch (const InvalidParameter& e) {
    throw Error(source + ": not an RRDBNet this engine builds (" + e.what() + ")");
  }
  return c;
}

ResidualDenseBlockImpl::ResidualDenseBlockImpl(int64_t nf, int64_t gc) {
  conv1 = register_module("conv1", rrdb_conv3x3(nf, gc));
  conv2 = register_module("conv2", rrdb_conv3x3(nf + gc, gc));
  conv3 = register_module("conv3", rrdb_conv3x3(nf + 2 * gc, gc));
  conv4 = register_module("conv4", rrdb_conv3x3(nf + 3 * gc, gc));
  conv5 = register_module("conv5", rrdb_conv3x3(nf + 4 * gc, nf));
}

at::Tensor ResidualDenseBlockImpl::forward(const at::Tensor& x) {
  const auto x1 = rrdb_leaky(conv1(x));
  const auto x2 = rrdb_leaky(conv2(at::cat({x, x1}, 1)));
  const auto x3 = rrdb_leaky(conv3(at::cat({x, x1, x2}, 1)));
  const auto x4 = rrdb_leaky(conv4(at::cat({x, x1, x2, x3}, 1)));
  return rrdb_scaled_residual(conv5(at::cat({x, x1, x2, x3, x4}, 1)), x);
}

RrdbImpl::RrdbImpl(int64_t nf, int64_t gc) {
  rdb1 = register_module("rdb1", ResidualDenseBlock(nf, gc));
  rdb2 = register_module("rdb2", ResidualDenseBlock(nf, gc));
  rdb3 = register_module("rdb3", ResidualDenseBlock(nf, gc));
}

at::Tensor RrdbImpl::forward(const at::Tensor& x) { return rrdb_scaled_residual(rdb3(rdb2(rdb1(x))), x); }

RrdbNetImpl::RrdbNetImpl(const RrdbNetConfig& c) : config(c) {
  c.validate();
  conv_first = register_module("conv_first", rrdb_conv3x3(c.conv_first_in_channels(), c.num_feat));
  body = torch::nn::Sequential();
  for (int b = 0; b < c.num_block; ++b) body->push_back(Rrdb(c.num_feat, c.num_grow_ch));
  register_module("body", body);
  conv_body = register_module("conv_body", rrdb_conv3x3(c.num_feat, c.num_feat));
  for (int i = 1; i <= c.upsamplings; ++i) {
    conv_up.push_back(register_module("conv_up" + std::to_string(i), rrdb_conv3x3(c.num_feat, c.num_feat)));
  }
  conv_hr = register_module("conv_hr", rrdb_conv3x3(c.num_feat, c.num_feat));
  conv_last = register_module("conv_last", rrdb_conv3x3(c.num_feat, c.num_out_ch));
}

at::Tensor RrdbNetImpl::forward(const at::Tensor& x) {
  const int r = config.unshuffle_factor();
  if (x.dim() != 4 || x.size(1) != config.num_in_ch) {
    throw Error("RRDBNet: input of shape " + c10::str(x.sizes()) + ", expected [B, " + std::to_string(config.num_in_ch) + ", H, W]");
  }
  if (x.size(2) % r != 0 || x.size(3) % r != 0) {
    throw Error("RRDBNet: input " + std::to_string(x.size(3)) + "x" + std::to_string(x.size(2)) +
                " is not a multiple of its pixel unshuffle " + std::to_string(r));
  }
  const auto memory_format = conv_first->weight.suggest_memory_format();
  auto feat = conv_first((r > 1 ? at::pixel_unshuffle(x, r) : x).contiguous(memory_format));
  feat = feat + conv_body(body->forward(feat));
  for (auto& up : conv_up) {
    const std::vector<int64_t> doubled{feat.size(2) * 2, feat.size(3) * 2};
    feat = rrdb_leaky(up(at::upsample_nearest2d(feat, at::IntArrayRef(doubled))));
  }
  return conv_last(rrdb_leaky(conv_hr(feat)));
}

}  // namespace diffuse::models
