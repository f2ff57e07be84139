// Fuzzes the safetensors header validation (src/io/safetensors.cpp, SafetensorsFile::open, which maps
// the file through util/mapped_file.cpp): the input is written to a file in memory (/dev/shm) and
// opened; for an accepted file every tensor is viewed (tensor()) and its bytes read, the first also
// converted to float. A diffuse::Error is a refusal; any other exception (a c10::Error included), a
// sanitizer report or a tensor that disagrees with its header entry is a finding.
#include <cstddef>
#include <cstdint>

#include "fuzz_support.h"
#include "io/safetensors.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::filesystem::path path = fuzz::scratch_dir() / "input.safetensors";
  fuzz::write_file(path, data, size);
  try {
    const auto file = diffuse::io::SafetensorsFile::open(path);
    for (const auto& [key, value] : file.metadata()) fuzz::touch(value.data(), value.size());
    bool first = true;
    for (const diffuse::io::TensorInfo& info : file.tensors()) {
      FUZZ_CHECK(file.contains(info.name));
      FUZZ_CHECK(info.data_begin <= info.data_end && info.data_end <= size);
      const at::Tensor tensor = file.tensor(info.name);
      FUZZ_CHECK(tensor.scalar_type() == info.scalar_type);
      FUZZ_CHECK(tensor.sizes().vec() == info.shape);
      FUZZ_CHECK(tensor.nbytes() == info.data_end - info.data_begin);
      fuzz::touch(tensor.data_ptr(), tensor.nbytes());
      if (first) {
        const at::Tensor converted = file.tensor(info.name, at::kFloat);
        FUZZ_CHECK(converted.scalar_type() == at::kFloat && converted.numel() == tensor.numel());
        fuzz::touch(converted.data_ptr(), converted.nbytes());
        first = false;
      }
    }
  } catch (const diffuse::Error&) {
    // a refusal
  }
  return 0;
}
