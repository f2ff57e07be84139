// Reading .safetensors files: an 8-byte little-endian header length, a JSON header describing
// every tensor, then the raw tensor bytes. The file is memory-mapped; tensors view the mapping.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "util/mapped_file.h"

namespace diffuse::io {

struct TensorInfo {
  std::string name;
  std::string dtype;             // as written in the file: "F16", "F32", "I64", ...
  at::ScalarType scalar_type;    // the matching torch type
  std::vector<int64_t> shape;
  uint64_t data_begin = 0;       // byte range inside the data area (after the header)
  uint64_t data_end = 0;
};

class SafetensorsFile {
 public:
  // Maps `path` and validates its header; throws diffuse::Error naming the file on any defect.
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  // In file (header) order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Without conversion (or when the file already has that type) the tensor views the mapping
  // without copying, and keeps the mapping alive for as long as it exists. With a different
  // `convert_to`, a converted copy.
  at::Tensor tensor(const std::string& name,
                    std::optional<at::ScalarType> convert_to = std::nullopt) const;

 private:
  SafetensorsFile() = default;

  std::filesystem::path path_;
  std::shared_ptr<const MappedFile> mapping_;
  const uint8_t* data_area_ = nullptr;   // first byte after the header
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

// "F16" -> at::kHalf etc.; std::nullopt for a name safetensors defines but torch 1.13 lacks, or
// for an unknown one.
std::optional<at::ScalarType> scalar_type_from_safetensors(const std::string& dtype);
// safetensors' name for a torch type ("F32", "BF16", ...), or nullptr for one it has no name for.
const char* safetensors_dtype_name(at::ScalarType type);

}  // namespace diffuse::io
