// ESRGAN-family upscaler files against ../shared/fixtures/upscale: both key layouts, .safetensors and
// .pth (plain and Real-ESRGAN's {'params_ema': ...}), read to the same BasicSR-named tensors; the name
// table both ways, for the layouts the manifest lists; files that are not upscalers refused by name.
#include "io/upscaler_files.h"

#include <gtest/gtest.h>

#include <fstream>

#include "io/safetensors_writer.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace diffuse::io {
namespace {

namespace fs = std::filesystem;

fs::path upscale_models() { return test::fixtures_dir() / "upscale" / "models"; }

std::string upscaler_load_error(const fs::path& path) {
  try {
    load_upscaler_file(path, at::kFloat);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no diffuse::Error)";
}

void expect_same_upscaler_tensors(const UpscalerFile& a, const UpscalerFile& b) {
  ASSERT_EQ(test::tensor_names(a.tensors), test::tensor_names(b.tensors));
  for (const auto& [name, tensor] : a.tensors) {
    EXPECT_TRUE(at::equal(tensor, b.tensors.at(name))) << a.source << " vs " << b.source << ": " << name;
  }
}

TEST(UpscalerFiles, EsrganLayoutReadsAsTheSameBasicSrTensors) {
  const auto basicsr = load_upscaler_file(upscale_models() / "rrdbnet_x4.safetensors", at::kFloat);
  const auto esrgan = load_upscaler_file(upscale_models() / "esrgan_x4_old.safetensors", at::kFloat);
  const auto esrgan_pth = load_upscaler_file(upscale_models() / "esrgan_x4_old.pth", at::kFloat);
  EXPECT_EQ(basicsr.layout, UpscalerLayout::BasicSR);
  EXPECT_EQ(esrgan.layout, UpscalerLayout::Esrgan);
  EXPECT_EQ(esrgan_pth.layout, UpscalerLayout::Esrgan);
  EXPECT_EQ(basicsr.tensors.size(), 72u);
  expect_same_upscaler_tensors(basicsr, esrgan);
  expect_same_upscaler_tensors(basicsr, esrgan_pth);
  // Errors about a renamed tensor name it as its file does.
  EXPECT_EQ(esrgan.file_names.at("conv_body.weight"), "model.1.sub.2.weight");
  EXPECT_EQ(esrgan.file_names.at("body.1.rdb3.conv5.bias"), "model.1.sub.1.RDB3.conv5.0.bias");
  EXPECT_TRUE(basicsr.file_names.empty());
}

TEST(UpscalerFiles, RealEsrganPthUnderParamsEma) {
  const auto safetensors = load_upscaler_file(upscale_models() / "rrdbnet_x2.safetensors", at::kFloat);
  const auto pth = load_upscaler_file(upscale_models() / "rrdbnet_x2.pth", at::kFloat);
  EXPECT_EQ(pth.layout, UpscalerLayout::BasicSR);
  EXPECT_EQ(pth.tensors.at("conv_first.weight").size(1), 12);  // pixel-unshuffled input
  expect_same_upscaler_tensors(safetensors, pth);
}

TEST(UpscalerFiles, LoadsInTheRequestedType) {
  const auto file = load_upscaler_file(upscale_models() / "esrgan_x4_old.pth", at::kBFloat16);
  for (const auto& [name, tensor] : file.tensors) EXPECT_EQ(tensor.scalar_type(), at::kBFloat16) << name;
}

// The manifest's key_layouts: x4 has its upconvs at model.3 and .6, HR at .8, last at .10; x2 3, 5, 7;
// x8 3, 6, 9, 11, 13; the trunk conv follows the blocks.
TEST(UpscalerFiles, NameTableBothWays) {
  const std::vector<std::tuple<int, std::string, std::string>> cases = {
      {2, "model.0.weight", "conv_first.weight"},
      {2, "model.1.sub.0.RDB1.conv1.0.weight", "body.0.rdb1.conv1.weight"},
      {2, "model.1.sub.22.RDB3.conv5.0.bias", "body.22.rdb3.conv5.bias"},
      {2, "model.1.sub.23.weight", "conv_body.weight"},
      {2, "model.3.weight", "conv_up1.weight"},
      {2, "model.6.bias", "conv_up2.bias"},
      {2, "model.8.weight", "conv_hr.weight"},
      {2, "model.10.weight", "conv_last.weight"},
      {1, "model.3.weight", "conv_up1.weight"},
      {1, "model.5.weight", "conv_hr.weight"},
      {1, "model.7.bias", "conv_last.bias"},
      {3, "model.9.weight", "conv_up3.weight"},
      {3, "model.11.weight", "conv_hr.weight"},
      {3, "model.13.weight", "conv_last.weight"},
  };
  for (const auto& [upsamplings, esrgan, basicsr] : cases) {
    EXPECT_EQ(basicsr_name_of_esrgan(esrgan, upsamplings, 23), basicsr) << esrgan;
    EXPECT_EQ(esrgan_name_of_basicsr(basicsr, upsamplings, 23), esrgan) << basicsr;
  }
  EXPECT_EQ(basicsr_name_of_esrgan("model.1.sub.23.RDB1.conv1.0.weight", 2, 23), std::nullopt);  // block 23 of 0..22
  EXPECT_EQ(basicsr_name_of_esrgan("model.4.weight", 2, 23), std::nullopt);
  EXPECT_EQ(esrgan_name_of_basicsr("conv_up3.weight", 2, 23), std::nullopt);
}

TEST(UpscalerFiles, StableDiffusionCheckpointIsRefused) {
  const auto checkpoint = test::fixtures_dir() / "tiny-sd1" / "tiny-sd1.safetensors";
  const auto error = upscaler_load_error(checkpoint);
  EXPECT_NE(error.find(checkpoint.string() + ": not an ESRGAN-family upscaler"), std::string::npos) << error;
  const auto ckpt = test::fixtures_dir() / "tiny-sd1" / "tiny-sd1.ckpt";
  EXPECT_NE(upscaler_load_error(ckpt).find(ckpt.string() + ": not an ESRGAN-family upscaler"), std::string::npos) << upscaler_load_error(ckpt);
}

class UpscalerFileErrors : public test::TempDirTest {};

TEST_F(UpscalerFileErrors, TruncatedPthNamesTheFile) {
  std::ifstream in(upscale_models() / "esrgan_x4_old.pth", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto truncated = dir_ / "truncated.pth";
  std::ofstream(truncated, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  const auto error = upscaler_load_error(truncated);
  EXPECT_EQ(error.rfind(truncated.string() + ": ", 0), 0u) << error;
}

TEST_F(UpscalerFileErrors, StrayEsrganTensorIsNamed) {
  const auto original = load_upscaler_file(upscale_models() / "esrgan_x4_old.safetensors", at::kFloat);
  TensorMap tensors;
  for (const auto& [name, tensor] : original.tensors) tensors[original.file_names.at(name)] = tensor;
  tensors["model.1.sub.0.RDB4.conv1.0.weight"] = at::zeros({8, 16, 3, 3});
  const auto path = dir_ / "stray.safetensors";
  write_safetensors(path, tensors);
  const auto error = upscaler_load_error(path);
  EXPECT_NE(error.find(path.string() + ": tensor 'model.1.sub.0.RDB4.conv1.0.weight' is not part of an ESRGAN RRDBNet"),
            std::string::npos)
      << error;
  // A top-level layer out of ESRGAN's order.
  tensors.erase("model.1.sub.0.RDB4.conv1.0.weight");
  tensors["model.9.weight"] = tensors.at("model.8.weight");
  write_safetensors(path, tensors);
  EXPECT_NE(upscaler_load_error(path).find("ESRGAN layout with top-level layers model.{0, 3, 6, 8, 9, 10}"), std::string::npos)
      << upscaler_load_error(path);
}

// DataParallel saves every name under 'module.'; the prefix is dropped.
TEST_F(UpscalerFileErrors, ModulePrefixIsDropped) {
  const auto original = load_upscaler_file(upscale_models() / "rrdbnet_x4.safetensors", at::kFloat);
  TensorMap prefixed;
  for (const auto& [name, tensor] : original.tensors) prefixed["module." + name] = tensor;
  const auto path = dir_ / "data_parallel.safetensors";
  write_safetensors(path, prefixed);
  expect_same_upscaler_tensors(original, load_upscaler_file(path, at::kFloat));
}

TEST_F(UpscalerFileErrors, MissingFile) {
  EXPECT_NE(upscaler_load_error(dir_ / "none.pth").find("none.pth: no such file"), std::string::npos);
}

}  // namespace
}  // namespace diffuse::io
