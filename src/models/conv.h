#pragma once
// Conv2d with the same options and weight names as torch::nn::Conv2d, which can reorder its kernel
// once into oneDNN's blocked layout for inference. libtorch's own CPU path re-lays the kernel out on
// every call, and for the UNet's deep 1280-channel 3x3 convs that costs more than the convolution:
// at 8x8, one thread, 29 ms instead of 13 ms in bf16 and 216 ms instead of 22 ms in fp32.
#include <torch/torch.h>

#include "models/linear.h"  // LowRankUpdate

namespace diffuse::models {

class Conv2dImpl : public torch::nn::Conv2dImpl {
 public:
  // Under a SkipParameterInit (models/parameter_init.h) the kernel and bias are left uninitialized.
  explicit Conv2dImpl(const torch::nn::Conv2dOptions& options);
  Conv2dImpl(int64_t in_channels, int64_t out_channels, torch::ExpandingArray<2> kernel_size)
      : Conv2dImpl(torch::nn::Conv2dOptions(in_channels, out_channels, kernel_size)) {}

  at::Tensor forward(const at::Tensor& input);

  // Reorders the kernel and releases its dense copy, so the module no longer holds the weight twice:
  // afterwards it can only run inference. Leaves the module as it was where oneDNN cannot run it
  // (no oneDNN in this libtorch, a GPU tensor, an unsupported dtype or CPU) and returns false.
  bool pack_for_inference();
  bool packed() const { return packed_weight_.defined(); }

  // As Linear's (models/linear.h).
  void add_low_rank_update(LowRankUpdate update);
  void clear_low_rank_updates() { low_rank_.clear(); }
  const std::vector<LowRankUpdate>& low_rank_updates() const { return low_rank_; }

 private:
  at::Tensor base_forward(const at::Tensor& input);
  at::Tensor packed_forward(const at::Tensor& input) const;

  at::Tensor packed_weight_;
  std::vector<int64_t> padding_;  // options' padding as a list, set when packed
  std::vector<LowRankUpdate> low_rank_;
};
TORCH_MODULE(Conv2d);

// pack_for_inference() on every Conv2d in `module`; returns how many were packed.
int pack_convolutions(torch::nn::Module& module);

}  // namespace diffuse::models
