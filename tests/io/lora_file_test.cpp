// LoRA files in both layouts the fixtures hold: kohya / AUTOMATIC1111 and diffusers / PEFT, which
// carry the same updates (the diffusers file with alpha / rank folded into up).
#include <gtest/gtest.h>

#include "io/lora_file.h"
#include "io/safetensors_writer.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace diffuse::io {
namespace {

using test::fixtures_dir;

std::filesystem::path lora_dir() { return fixtures_dir() / "lora"; }

std::string underscored(std::string name) {
  for (auto& c : name) c = c == '.' ? '_' : c;
  return name;
}

TEST(LoraFile, ReadsKohyaModulesWithTheirAlphas) {
  const auto manifest = test::read_json(lora_dir() / "manifest.json").at("lora_files").at("tiny-sd1-lora");
  const auto lora = read_lora_file(lora_dir() / "tiny-sd1-lora.safetensors");
  EXPECT_EQ(lora.name, "tiny-sd1-lora");
  const auto& expected = manifest.at("modules");
  ASSERT_EQ(lora.modules.size(), expected.size());
  std::map<std::string, const LoraModule*> by_name;
  for (const auto& module : lora.modules) by_name[module.file_name] = &module;
  int unet = 0, text = 0;
  for (const auto& e : expected) {
    const auto name = e.at("name").get<std::string>();
    ASSERT_TRUE(by_name.count(name)) << name;
    const auto& module = *by_name[name];
    EXPECT_TRUE(module.underscored);
    const bool is_unet = name.rfind("lora_unet_", 0) == 0;
    EXPECT_EQ(module.target, is_unet ? LoraTarget::Unet : LoraTarget::TextEncoder) << name;
    EXPECT_EQ(module.module, name.substr(is_unet ? 10 : 8));
    EXPECT_EQ(module.down.sizes().vec(), e.at("down_shape").get<std::vector<int64_t>>()) << name;
    EXPECT_EQ(module.up.sizes().vec(), e.at("up_shape").get<std::vector<int64_t>>()) << name;
    EXPECT_EQ(module.down.scalar_type(), at::kFloat);
    EXPECT_EQ(module.rank(), e.at("rank").get<int64_t>());
    EXPECT_EQ(module.alpha.has_value(), !e.at("alpha").is_null()) << name;
    EXPECT_DOUBLE_EQ(module.multiplier(), e.at("multiplier").get<double>()) << name;
    (is_unet ? unet : text)++;
  }
  EXPECT_GT(unet, 0);
  EXPECT_GT(text, 0);
}

TEST(LoraFile, DiffusersLayoutHoldsTheSameUpdates) {
  const auto kohya = read_lora_file(lora_dir() / "tiny-sd1-lora.safetensors");
  const auto diffusers = read_lora_file(lora_dir() / "tiny-sd1-lora.diffusers.safetensors");
  EXPECT_EQ(diffusers.name, "tiny-sd1-lora.diffusers");
  ASSERT_EQ(diffusers.modules.size(), kohya.modules.size());
  std::map<std::pair<LoraTarget, std::string>, const LoraModule*> by_module;
  for (const auto& module : diffusers.modules) {
    EXPECT_FALSE(module.underscored) << module.file_name;
    EXPECT_FALSE(module.alpha.has_value()) << module.file_name;
    by_module[{module.target, underscored(module.module)}] = &module;
  }
  for (const auto& module : kohya.modules) {
    const auto found = by_module.find({module.target, module.module});
    ASSERT_NE(found, by_module.end()) << module.file_name;
    const auto& other = *found->second;
    // alpha / rank is 0.5 or 1: exact in F16 but for halved subnormals (below 6.1e-5), which lose their last bit.
    EXPECT_TRUE(other.down.equal(module.down)) << module.file_name;
    EXPECT_TRUE(at::allclose(other.up, module.up * module.multiplier(), 0, 6e-8)) << module.file_name;
  }
  const auto has = [&](LoraTarget target, const std::string& module) { return by_module.count({target, module}) == 1; };
  EXPECT_TRUE(has(LoraTarget::Unet, "down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q"));  // .lora.down
  EXPECT_TRUE(has(LoraTarget::Unet, "down_blocks_1_attentions_0_proj_in"));                         // PEFT lora_A
  EXPECT_TRUE(has(LoraTarget::TextEncoder, "text_model_encoder_layers_0_self_attn_k_proj"));        // lora_linear_layer
}

class LoraFileErrors : public test::TempDirTest {
 protected:
  std::string error_of(const TensorMap& tensors) {
    const auto path = dir_ / "bad.safetensors";
    write_safetensors(path, tensors);
    try {
      read_lora_file(path);
    } catch (const Error& error) {
      return error.what();
    }
    return "no error";
  }
};

TEST_F(LoraFileErrors, NamesTheModuleOrTensorItCannotUse) {
  const auto down = at::ones({4, 8}), up = at::ones({8, 4});
  EXPECT_NE(error_of({{"lora_unet_a.lora_down.weight", down}}).find("module 'lora_unet_a' has a down but no up"),
            std::string::npos);
  EXPECT_NE(error_of({{"lora_unet_a.lora_up.weight", up}}).find("'lora_unet_a' has an up but no down"),
            std::string::npos);
  EXPECT_NE(error_of({{"lora_unet_a.lora_down.weight", down}, {"lora_unet_a.lora_up.weight", at::ones({8, 3})}})
                .find("does not follow"),
            std::string::npos);
  EXPECT_NE(error_of({{"lora_unet_a.hada_w1_a", down}}).find("'lora_unet_a.hada_w1_a' is a LyCORIS tensor"),
            std::string::npos);
  EXPECT_NE(error_of({{"lora_unet_a.diff", down}}).find("is a LyCORIS tensor"), std::string::npos);
  EXPECT_NE(error_of({{"model.diffusion_model.out.weight", down}}).find("is not a LoRA tensor"), std::string::npos);
  EXPECT_NE(error_of({{"lora_unet_a.lora_down.weight", down},
                      {"lora_unet_a.lora_up.weight", up},
                      {"lora_unet_a.alpha", at::ones({2})}})
                .find("'lora_unet_a.alpha' should hold one number"),
            std::string::npos);
  const auto error = error_of({});
  EXPECT_NE(error.find("bad.safetensors"), std::string::npos) << error;
  EXPECT_NE(error.find("holds no LoRA modules"), std::string::npos) << error;
}

TEST_F(LoraFileErrors, AMissingFileIsNamed) {
  try {
    read_lora_file(dir_ / "absent.safetensors");
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("absent.safetensors"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace diffuse::io
