#include <gtest/gtest.h>

#include <fstream>

#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace diffuse::io {
namespace {

using SafetensorsWriter = test::TempDirTest;

TEST_F(SafetensorsWriter, RoundTripsEveryTypeShapeAndMetadata) {
  TensorMap tensors{
      {"f32", at::arange(12, at::kFloat).reshape({3, 4}) / 7},
      {"f16", at::tensor({1.5, -2.25, 65504.0}).to(at::kHalf)},
      {"bf16", at::tensor({0.5, 3.0}).to(at::kBFloat16)},
      {"i64", at::tensor({int64_t{1} << 40, int64_t{-3}})},
      {"f64", at::tensor({1e300, -0.125}, at::kDouble)},
      {"i32", at::tensor({470001, -7}, at::kInt)},
      {"u8", at::tensor({0, 255}, at::kByte)},
      {"bool", at::tensor({1, 0}).to(at::kBool)},
      {"scalar", at::tensor(2.5f).reshape({})},
      {"strided", at::arange(6, at::kFloat).reshape({2, 3}).t()},  // non-contiguous input
  };
  const auto path = dir_ / "w.safetensors";
  write_safetensors(path, tensors, {{"format", "pt"}});
  const auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  ASSERT_EQ(file.tensors().size(), tensors.size());
  for (const auto& [name, expected] : tensors) {
    const auto actual = file.tensor(name);
    EXPECT_EQ(actual.scalar_type(), expected.scalar_type()) << name;
    EXPECT_TRUE(actual.equal(expected)) << name;
  }
  EXPECT_EQ(file.info("f16").dtype, "F16");
  EXPECT_EQ(file.info("bf16").dtype, "BF16");
  EXPECT_EQ(file.info("i64").dtype, "I64");
}

TEST_F(SafetensorsWriter, ReplacesAnExistingFileAndLeavesNoTemporary) {
  const auto path = dir_ / "w.safetensors";
  write_safetensors(path, {{"a", at::ones({2})}});
  write_safetensors(path, {{"b", at::zeros({3})}});
  const auto file = SafetensorsFile::open(path);
  EXPECT_FALSE(file.contains("a"));
  EXPECT_TRUE(file.tensor("b").equal(at::zeros({3})));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), std::filesystem::directory_iterator()), 1);
}

TEST_F(SafetensorsWriter, RejectsUnsupportedTypesNamingTheTensorAndWritesNothing) {
  const auto path = dir_ / "w.safetensors";
  try {
    write_safetensors(path, {{"ok", at::ones({1})}, {"complex", at::ones({2}, at::kComplexFloat)}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'complex'"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_THROW(write_safetensors(dir_ / "no-such-folder" / "w.safetensors", {{"a", at::ones({1})}}), Error);
}

}  // namespace
}  // namespace diffuse::io
