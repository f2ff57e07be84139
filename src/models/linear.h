#pragma once
// Linear with the same options and weight names as torch::nn::Linear, which can hand its weight to
// oneDNN's matrix product once, reordered into the blocked layout that product reads fastest.
// libtorch's CPU path sends fp32 products to the BLAS, which on these machines runs the UNet's
// shapes at a third to a half of oneDNN's rate (8192x320 by 320x2560, 2 threads: 83 ms through
// OpenBLAS, 37 ms packed; the text encoder's 154x768 by 768x320: 4.0 ms, 0.2 ms), and re-lays a
// bf16 weight out on every call.
#include <torch/torch.h>

#include <memory>
#include <vector>

namespace diffuse::models {

struct PackedMatmul;  // oneDNN's objects, kept out of this header

// A LoRA's change to one layer, run beside the layer rather than merged into its weight: a packed
// weight has no dense copy to add to, and taking the update away again is then free and exact.
// output += scale * up(down(input)). Linear: down [rank, in], up [out, rank]. Conv2d: down
// [rank, in, kh, kw] (run with the layer's stride, padding and dilation), up [out, rank, 1, 1].
struct LowRankUpdate {
  at::Tensor down, up;
  double scale = 1;
};

class LinearImpl : public torch::nn::LinearImpl {
 public:
  // Under a SkipParameterInit (models/parameter_init.h) the weight and bias are left uninitialized.
  explicit LinearImpl(const torch::nn::LinearOptions& options);
  LinearImpl(int64_t in_features, int64_t out_features) : LinearImpl(torch::nn::LinearOptions(in_features, out_features)) {}

  at::Tensor forward(const at::Tensor& input);

  // Reorders the weight for oneDNN and releases its dense copy, so the module no longer holds the
  // weight twice: afterwards it can only run inference. Leaves the module as it was where oneDNN
  // cannot run it (this build has no oneDNN, a GPU tensor, a dtype or CPU oneDNN does not support)
  // and returns false.
  bool pack_for_inference();
  bool packed() const { return packed_ != nullptr; }

  // Several updates add up (several LoRAs at once). The tensors are taken to the layer's dtype and
  // device; shapes that do not fit the layer throw diffuse::Error.
  void add_low_rank_update(LowRankUpdate update);
  void clear_low_rank_updates() { low_rank_.clear(); }
  const std::vector<LowRankUpdate>& low_rank_updates() const { return low_rank_; }

 private:
  at::Tensor base_forward(const at::Tensor& input);

  std::shared_ptr<PackedMatmul> packed_;
  std::vector<LowRankUpdate> low_rank_;
};
TORCH_MODULE(Linear);

// pack_for_inference() on every Linear in `module`; returns how many were packed.
int pack_linear_layers(torch::nn::Module& module);

}  // namespace diffuse::models
