#pragma once
#include <map>
#include <string>

#include <ATen/ATen.h>

namespace diffuse {

// Weights of one component, keyed by their diffusers names.
using TensorMap = std::map<std::string, at::Tensor>;

}  // namespace diffuse
