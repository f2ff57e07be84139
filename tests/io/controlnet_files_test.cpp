// ControlNet files: lllyasviel's single-file layout (control_model.*) and the diffusers folder give
// the same diffusers-named tensors, bit for bit (both hold the same F16 values), and export through
// the same name table gives back the single file's names and values.
#include <gtest/gtest.h>

#include "io/controlnet_files.h"
#include "io/ldm_structure.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace diffuse::io {
namespace {

namespace fs = std::filesystem;
using test::fixtures_dir;

fs::path controlnet_fixture(const std::string& relative) { return fixtures_dir() / "controlnet" / relative; }

void expect_same_tensors(const TensorMap& actual, const TensorMap& expected, const std::string& what) {
  ASSERT_EQ(test::tensor_names(actual), test::tensor_names(expected)) << what;
  for (const auto& [name, tensor] : expected) {
    EXPECT_TRUE(at::equal(actual.at(name), tensor)) << what << ": " << name;
  }
}

TEST(ControlNetFiles, SingleFileEqualsTheDiffusersFolder) {
  const auto folder = load_controlnet_files(controlnet_fixture("tiny-sd1-cn/diffusers"), at::kFloat);
  const auto single = load_controlnet_files(controlnet_fixture("tiny-sd1-cn/tiny-sd1-cn.safetensors"), at::kFloat);
  EXPECT_FALSE(folder.config.is_null());
  EXPECT_TRUE(single.config.is_null());
  expect_same_tensors(single.tensors, folder.tensors, "single file vs folder");
  EXPECT_EQ(single.file_names.at("controlnet_cond_embedding.conv_out.weight"), "control_model.input_hint_block.6.weight");
  EXPECT_EQ(single.file_names.at("controlnet_down_blocks.5.bias"), "control_model.zero_convs.5.0.bias");
  EXPECT_EQ(single.file_names.at("controlnet_mid_block.weight"), "control_model.middle_block_out.0.weight");
}

TEST(ControlNetFiles, ExportGivesTheSingleFileBack) {
  const auto folder = load_controlnet_files(controlnet_fixture("tiny-sd1-cn/diffusers"), at::kFloat);
  const auto file = SafetensorsFile::open(controlnet_fixture("tiny-sd1-cn/tiny-sd1-cn.safetensors"));
  TensorMap original;
  for (const auto& info : file.tensors()) original[info.name] = file.tensor(info.name, at::kFloat);
  expect_same_tensors(export_controlnet_checkpoint(folder.tensors), original, "export");
}

class ControlNetFilesOnDisk : public test::TempDirTest {};

TEST_F(ControlNetFilesOnDisk, LoadsWithoutThePrefix) {
  const auto single = load_controlnet_files(controlnet_fixture("tiny-sd1-cn-b/tiny-sd1-cn-b.safetensors"), at::kFloat);
  TensorMap bare;
  const auto file = SafetensorsFile::open(controlnet_fixture("tiny-sd1-cn-b/tiny-sd1-cn-b.safetensors"));
  for (const auto& info : file.tensors()) bare[info.name.substr(kControlNetPrefix.size())] = file.tensor(info.name);
  const auto path = dir_ / "bare.safetensors";
  write_safetensors(path, bare);
  expect_same_tensors(load_controlnet_files(path, at::kFloat).tensors, single.tensors, "without prefix");
}

TEST(ControlNetFiles, AModelThatIsNoControlNetIsNamed) {
  const auto path = fixtures_dir() / "tiny-sd1" / "tiny-sd1.safetensors";
  try {
    load_controlnet_files(path, at::kFloat);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a ControlNet"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tiny-sd1.safetensors"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace diffuse::io
