#pragma once
#include <set>
#include <set>
#include <string>

#include <torch/torch.h>

#include "util/tensor_map.h"

namespace diffuse::models {

// Copies `weights` (diffusers names) into `module`'s parameters. Every missing, unexpected or
// wrongly shaped tensor is reported by name in one diffuse::Error that starts with `source` (the
// file the weights came from). Names in `optional` (buffers some writers save, such as CLIP's
// position_ids) are ignored when present.
void load_weights(torch::nn::Module& module, const TensorMap& weights, const std::string& source,
                  const std::set<std::string>& optional = {});

}  // namespace diffuse::models
