#pragma once
// One file of named tensors, whichever format it is in: .safetensors, or a torch checkpoint
// (.ckpt/.pt/.pth/.bin, read by the restricted reader). Single-file models load through this.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "io/checkpoint_file.h"
#include "io/safetensors.h"

namespace diffuse::io {

class TensorFile {
 public:
  // By extension: checkpoint extensions (is_checkpoint_path) as torch checkpoints, anything else as
  // safetensors. Throws diffuse::Error naming the file.
  static TensorFile open(const std::filesystem::path& path);

  const std::vector<TensorInfo>& tensors() const;
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;
  at::Tensor tensor(const std::string& name, std::optional<at::ScalarType> convert_to = std::nullopt) const;

 private:
  TensorFile() = default;
  std::optional<SafetensorsFile> safetensors_;
  std::optional<CheckpointFile> checkpoint_;
};

}  // namespace diffuse::io
