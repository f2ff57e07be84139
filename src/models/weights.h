#pragma once
#include <functional>
#include <map>
#include <set>
#include <string>

#include <torch/torch.h>

#include "util/tensor_map.h"

namespace diffuse::models {

struct WeightSource {
  std::string file;                               // starts every error message
  std::map<std::string, std::string> file_names;  // diffusers name -> name in the file, where they differ
  std::set<std::string> optional;  // saved by some writers (CLIP's position_ids), ignored when present
};

// Copies `weights` (diffusers names) into `module`'s parameters. Every missing, unexpected or
// wrongly shaped tensor is reported by name (as the file names it) in one diffuse::Error.
// `after_copy` sees each source tensor once it is copied: a memory-mapped file's pages can then be
// handed back tensor by tensor, so loading never holds a whole component twice.
void load_weights(torch::nn::Module& module, const TensorMap& weights, const WeightSource& source,
                  const std::function<void(const at::Tensor&)>& after_copy = {});

}  // namespace diffuse::models
