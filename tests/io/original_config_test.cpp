// Original (LDM / sgm) configs read into typed facts: the fixtures' own configs, the families'
// defaults, wrong types named, and the writer convert uses read back to the same facts.
#include "io/original_config.h"

#include <gtest/gtest.h>

#include "support/fixtures.h"
#include "util/error.h"
#include "util/json.h"

namespace diffuse::io {
namespace {

TEST(OriginalConfig, ReadsAnLdmConfig) {
  const auto sd2 = read_original_config(read_json_file(test::fixtures_dir() / "tiny-sd2v" / "ldm_config.json"));
  EXPECT_EQ(sd2.unet.num_head_channels, 16);
  EXPECT_FALSE(sd2.unet.num_heads.has_value());
  EXPECT_EQ(sd2.unet.image_size, 32);
  EXPECT_EQ(sd2.vae.scale_factor, 0.18215);
  EXPECT_EQ(sd2.vae.resolution, 64);
  EXPECT_TRUE(sd2.text_encoder.open_clip);
  EXPECT_EQ(sd2.text_encoder.num_heads, 4);  // its "facts"
  EXPECT_EQ(sd2.text_encoder.activation, "gelu");
  EXPECT_EQ(sd2.open_clip_layer, "penultimate");
  EXPECT_EQ(sd2.train_timesteps, 1000);
  EXPECT_EQ(sd2.beta_start, 0.00085);
  EXPECT_EQ(sd2.beta_end, 0.012);
  EXPECT_TRUE(sd2.v_prediction);
}

TEST(OriginalConfig, ReadsAnSgmConfig) {
  const auto xl = read_original_config(read_json_file(test::fixtures_dir() / "tiny-sdxl" / "ldm_config.json"));
  EXPECT_EQ(xl.unet.num_head_channels, 16);
  EXPECT_EQ(xl.unet.adm_in_channels, 80);
  EXPECT_EQ(xl.size_embedding_width, 8);  // the first ConcatTimestepEmbedderND's outdim
  EXPECT_EQ(xl.vae.scale_factor, 0.13025);
  // Its embedders by kind: CLIP ViT-L first, OpenCLIP bigG second.
  EXPECT_FALSE(xl.text_encoder.open_clip);
  EXPECT_EQ(xl.text_encoder.activation, "quick_gelu");
  EXPECT_TRUE(xl.text_encoder_2.open_clip);
  EXPECT_EQ(xl.train_timesteps, 1000);  // denoiser_config.params.num_idx
  EXPECT_FALSE(xl.beta_start.has_value());
  EXPECT_FALSE(xl.v_prediction);  // EpsScaling
  const nlohmann::json v = {
      {"model",
       {{"params",
         {{"denoiser_config",
           {{"params",
             {{"num_idx", 500},
              {"scaling_config", {{"target", "sgm.modules.diffusionmodules.denoiser_scaling.VScaling"}}},
              {"discretization_config", {{"params", {{"linear_start", 0.001}, {"linear_end", 0.02}}}}}}}}}}}}}};
  const auto vxl = read_original_config(v);
  EXPECT_TRUE(vxl.v_prediction);
  EXPECT_EQ(vxl.train_timesteps, 500);
  EXPECT_EQ(vxl.beta_start, 0.001);
  EXPECT_EQ(vxl.beta_end, 0.02);
}

TEST(OriginalConfig, NothingOrNotAConfigSaysNothing) {
  for (const auto& config : {nlohmann::json(), nlohmann::json::array(), nlohmann::json{{"description", "notes"}}}) {
    const auto facts = read_original_config(config);
    EXPECT_FALSE(facts.vae.scale_factor.has_value());
    EXPECT_FALSE(facts.unet.num_heads.has_value());
    EXPECT_FALSE(facts.text_encoder.open_clip);
    EXPECT_FALSE(facts.v_prediction);
    EXPECT_EQ(facts.open_clip_layer, "penultimate");
  }
}

TEST(OriginalConfig, WrongTypesAreNamed) {
  const nlohmann::json config = {{"model", {{"params", {{"unet_config", {{"params", {{"num_heads", "eight"}}}}}}}}}};
  try {
    read_original_config(config);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "original config: num_heads: must be a whole number from -2147483648 to 2147483647, not \"eight\"");
  }
}

TEST(OriginalConfig, FamilyDefaultsFillOnlyWhatIsUnsaid) {
  OriginalConfig sd2;
  add_family_defaults(sd2, LdmFamily::Sd2);
  EXPECT_TRUE(sd2.text_encoder.open_clip);
  EXPECT_FALSE(sd2.vae.scale_factor.has_value());
  OriginalConfig xl;
  add_family_defaults(xl, LdmFamily::Sdxl);
  EXPECT_EQ(xl.vae.scale_factor, 0.13025);
  EXPECT_TRUE(xl.text_encoder_2.open_clip);
  EXPECT_FALSE(xl.text_encoder.open_clip);
  xl.vae.scale_factor = 0.5;
  add_family_defaults(xl, LdmFamily::Sdxl);
  EXPECT_EQ(xl.vae.scale_factor, 0.5);
  OriginalConfig sd1;
  add_family_defaults(sd1, LdmFamily::Sd1);
  EXPECT_FALSE(sd1.text_encoder.open_clip);
  EXPECT_FALSE(sd1.vae.scale_factor.has_value());
}

TEST(OriginalConfig, WrittenConfigReadsBack) {
  OriginalConfig facts;
  facts.unet.num_heads = 2;
  facts.unet.image_size = 8;
  facts.unet.norm_num_groups = 4;
  facts.vae.scale_factor = 0.25;
  facts.vae.resolution = 64;
  facts.vae.norm_num_groups = 8;
  facts.text_encoder.num_heads = 2;
  facts.text_encoder.activation = "quick_gelu";
  facts.text_encoder.bos_token_id = 30;
  facts.text_encoder.eos_token_id = 31;
  facts.text_encoder.pad_token_id = 31;
  facts.v_prediction = true;
  const auto back = read_original_config(original_config_json(facts, LdmFamily::Sd1));
  EXPECT_EQ(back.unet.num_heads, 2);
  EXPECT_EQ(back.unet.num_head_channels, -1);
  EXPECT_EQ(back.unet.image_size, 8);
  EXPECT_EQ(back.unet.norm_num_groups, 4);
  EXPECT_EQ(back.vae.scale_factor, 0.25);
  EXPECT_EQ(back.vae.resolution, 64);
  EXPECT_EQ(back.vae.norm_num_groups, 8);
  EXPECT_FALSE(back.text_encoder.open_clip);
  EXPECT_EQ(back.text_encoder.num_heads, 2);
  EXPECT_EQ(back.text_encoder.activation, "quick_gelu");
  EXPECT_EQ(back.text_encoder.bos_token_id, 30);
  EXPECT_EQ(back.text_encoder.eos_token_id, 31);
  EXPECT_EQ(back.text_encoder.pad_token_id, 31);
  EXPECT_TRUE(back.v_prediction);
  EXPECT_TRUE(read_original_config(original_config_json(facts, LdmFamily::Sd2)).text_encoder.open_clip);
}

}  // namespace
}  // namespace diffuse::io
