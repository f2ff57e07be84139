#include "io/ldm_export.h"

#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "support/fixtures.h"
#include "util/error.h"

namespace diffuse::io {
namespace {

namespace fs = std::filesystem;

bool is_position_ids(const std::string& name) { return name.find("position_ids") != std::string::npos; }

// A component's tensors exactly as stored (no dtype conversion), so equality is bit equality.
TensorMap read_raw(const fs::path& file) {
  const auto weights = SafetensorsFile::open(file);
  TensorMap tensors;
  for (const auto& info : weights.tensors()) tensors.emplace(info.name, weights.tensor(info.name));
  return tensors;
}

class LdmExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto root = test::fixtures_dir() / "tiny-sd1";
    unet = read_raw(root / "diffusers/unet/diffusion_pytorch_model.safetensors");
    vae = read_raw(root / "diffusers/vae/diffusion_pytorch_model.safetensors");
    text_encoder = read_raw(root / "diffusers/text_encoder/model.safetensors");
    single_file = root / "tiny-sd1.safetensors";
  }
  TensorMap unet, vae, text_encoder;
  fs::path single_file;
};

TEST_F(LdmExportTest, TinySd1ExportsToTheReleasedSingleFileBitForBit) {
  const auto exported = export_ldm_checkpoint(unet, vae, text_encoder);
  const auto expected = SafetensorsFile::open(single_file);
  size_t compared = 0;
  for (const auto& info : expected.tensors()) {
    if (is_position_ids(info.name)) continue;
    auto it = exported.find(info.name);
    ASSERT_NE(it, exported.end()) << "export lacks " << info.name;
    const auto want = expected.tensor(info.name);
    EXPECT_EQ(it->second.scalar_type(), want.scalar_type()) << info.name;
    EXPECT_EQ(it->second.sizes(), want.sizes()) << info.name;
    EXPECT_TRUE(at::equal(it->second, want)) << info.name << " differs";
    ++compared;
  }
  EXPECT_EQ(compared, exported.size()) << "export has tensors the single file lacks";
  EXPECT_EQ(compared, 512u);
}

TEST_F(LdmExportTest, LoaderPlanMapsEveryExportedNameBackToItsDiffusersName) {
  const auto exported = export_ldm_checkpoint(unet, vae, text_encoder);
  std::vector<std::string> keys;
  for (const auto& [name, tensor] : exported) keys.push_back(name);
  const auto plan = plan_ldm_conversion(keys, nullptr, "exported");
  EXPECT_EQ(plan.family, "sd1");
  EXPECT_TRUE(plan.ignored.empty());
  ASSERT_EQ(plan.renames.size(), keys.size());
  for (const auto& rename : plan.renames) {
    const TensorMap& component = rename.component == Component::Unet ? unet
                                 : rename.component == Component::Vae ? vae
                                                                       : text_encoder;
    EXPECT_TRUE(component.count(rename.target)) << rename.source << " -> " << rename.target;
    EXPECT_EQ(ldm_name(rename.component, rename.target, component), rename.source);
  }
}

TEST_F(LdmExportTest, VaeAttentionWeightsBecomeOneByOneConvolutions) {
  const auto exported = export_ldm_checkpoint(unet, vae, text_encoder);
  const auto& q = exported.at("first_stage_model.decoder.mid.attn_1.q.weight");
  EXPECT_EQ(q.sizes(), (std::vector<int64_t>{64, 64, 1, 1}));
  EXPECT_EQ(exported.at("first_stage_model.decoder.mid.attn_1.q.bias").dim(), 1);
  EXPECT_EQ(exported.at("first_stage_model.decoder.mid.attn_1.norm.weight").dim(), 1);
}

TEST_F(LdmExportTest, NameWithNoOriginalPlaceIsRejectedByName) {
  unet.emplace("down_blocks.0.mystery.weight", at::zeros({1}));
  try {
    export_ldm_checkpoint(unet, vae, text_encoder);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("down_blocks.0.mystery.weight"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace diffuse::io
