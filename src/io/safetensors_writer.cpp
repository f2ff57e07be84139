#include "io/safetensors_writer.h"

#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace diffuse::io {

namespace fs = std::filesystem;

void write_safetensors(const fs::path& path, const TensorMap& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Validate and lay out everything before touching the disk.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name.empty() || name == "__metadata__") throw Error(path.string() + ": invalid tensor name '" + name + "'");
    if (!tensor.defined()) throw Error(path.string() + ": tensor '" + name + "' is undefined");
    const char* dtype = safetensors_dtype_name(tensor.scalar_type());
    if (dtype == nullptr) {
      throw Error(path.string() + ": tensor '" + name + "' has type " + std::string(c10::toString(tensor.scalar_type())) +
                  "; supported: F32, F16, BF16, I64");
    }
    auto bytes = tensor.detach().to(at::kCPU).contiguous();
    const uint64_t size = static_cast<uint64_t>(bytes.numel()) * bytes.element_size();
    header[name] = {{"dtype", dtype}, {"shape", tensor.sizes().vec()}, {"data_offsets", {offset, offset + size}}};
    offset += size;
    data.push_back(std::move(bytes));
  }
  std::string header_text = header.dump();
  // The reader's mapping stays aligned for every dtype when the data area starts at a multiple of 8.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');

  write_file_atomically(path, [&](const fs::path& temp) {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(path.string() + ": cannot create " + temp.string());
    uint64_t length = header_text.size();
    unsigned char length_bytes[8];
    for (int i = 0; i < 8; ++i) length_bytes[i] = static_cast<unsigned char>(length >> (8 * i));
    out.write(reinterpret_cast<const char*>(length_bytes), 8);
    out.write(header_text.data(), static_cast<std::streamsize>(header_text.size()));
    for (const auto& bytes : data) {
      out.write(static_cast<const char*>(bytes.data_ptr()), static_cast<std::streamsize>(bytes.numel() * bytes.element_size()));
    }
    if (!out.flush()) throw Error(path.string() + ": write failed (disk full?)");
  });
}

}  // namespace diffuse::io
