#pragma once
#include <map>
#include <set>
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
void load_weights(torch::nn::Module& module, const TensorMap& weights, const WeightSource& source);

}  // namespace diffuse::models
