// Regressions from fuzz_safetensors (docs/fuzzing.md): a header with a deeply nested value overflowed
// the stack inside nlohmann's ordered_json parser (it copies an object's earlier values, recursively, as
// the object grows) before any check of ours ran; an empty tensor at an unaligned offset called memcpy
// with a null destination (undefined even for 0 bytes).
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "io/safetensors.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace diffuse::io {
namespace {

class SafetensorsDepthTest : public test::TempDirTest {};

TEST_F(SafetensorsDepthTest, DeeplyNestedHeaderIsRefused) {
  const std::string header = R"({"t":{"dtype":"F32","shape":)" + std::string(50000, '[') + std::string(50000, ']') +
                             R"(,"data_offsets":[0,0]}})";
  const uint64_t length = header.size();
  const auto path = dir_ / "deep.safetensors";
  std::ofstream(path, std::ios::binary) << std::string(reinterpret_cast<const char*>(&length), 8) << header;
  try {
    SafetensorsFile::open(path);
    FAIL() << "expected diffuse::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("header nested deeper than 256 levels"), std::string::npos) << e.what();
  }
}

TEST_F(SafetensorsDepthTest, EmptyTensorAtAnUnalignedOffset) {
  // A 57-byte header puts the data area at byte 65: not a multiple of 4, so tensor() copies.
  const std::string header = R"({"e":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}} )";
  const uint64_t length = header.size();
  ASSERT_NE((8 + length) % 4, 0u);
  const auto path = dir_ / "empty.safetensors";
  std::ofstream(path, std::ios::binary) << std::string(reinterpret_cast<const char*>(&length), 8) << header;
  const auto file = SafetensorsFile::open(path);
  const at::Tensor tensor = file.tensor("e");
  EXPECT_EQ(tensor.sizes().vec(), (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(file.tensor("e", at::kHalf).scalar_type(), at::kHalf);
}

}  // namespace
}  // namespace diffuse::io
