#pragma once
// Linear with the same options and weight names as torch::nn::Linear, which can hand its weight to
// oneDNN's matrix product once, reordered into the blocked layout that product reads fastest.
// libtorch's CPU path sends fp32 products to the BLAS, which on these machines runs the UNet's
// shapes at a third to a half of oneDNN's rate (8192x320 by 320x2560, 2 threads: 83 ms through
// OpenBLAS, 37 ms packed; the text encoder's 154x768 by 768x320: 4.0 ms, 0.2 ms), and re-lays a
// bf16 weight out on every call.
#include <torch/torch.h>

#include <memory>

namespace diffuse::models {

struct PackedMatmul;  // oneDNN's objects, kept out of this header

class LinearImpl : public torch::nn::LinearImpl {
 public:
  using torch::nn::LinearImpl::LinearImpl;

  at::Tensor forward(const at::Tensor& input);

  // Reorders the weight for oneDNN and releases its dense copy, so the module no longer holds the
  // weight twice: afterwards it can only run inference. Leaves the module as it was where oneDNN
  // cannot run it (this build has no oneDNN, a GPU tensor, a dtype or CPU oneDNN does not support)
  // and returns false.
  bool pack_for_inference();
  bool packed() const { return packed_ != nullptr; }

 private:
  std::shared_ptr<PackedMatmul> packed_;
};
TORCH_MODULE(Linear);

// pack_for_inference() on every Linear in `module`; returns how many were packed.
int pack_linear_layers(torch::nn::Module& module);

}  // namespace diffuse::models
