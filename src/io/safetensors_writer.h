// Writing .safetensors files: the format the reader in io/safetensors.h reads, so trained models
// and benchmark fixtures round-trip through the same validated path.
#pragma once
#include <filesystem>
#include <map>
#include <string>

#include "util/tensor_map.h"

namespace diffuse::io {

// Writes `tensors` (F64, F32, F16, BF16, I64, I32, I16, I8, U8 or BOOL; complex and quantised types are
// rejected) to
// `path`, names in sorted order, data contiguous and little-endian, with `metadata` under
// "__metadata__". The file goes to a temporary sibling renamed over `path` when complete, so a
// failure never leaves a half-written file. Throws diffuse::Error naming the path or tensor.
void write_safetensors(const std::filesystem::path& path, const TensorMap& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace diffuse::io
