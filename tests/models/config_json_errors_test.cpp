// Regressions from fuzz_json_config (docs/fuzzing.md): a config.json field of the wrong type escaped
// as nlohmann's type_error (naming neither field nor file), a float beyond int's range was converted
// with undefined behaviour, and an empty block_out_channels was accepted (time_embed_dim() and
// downscale_factor() then read past an empty vector / shifted by -1).
#include "models/config.h"

#include <gtest/gtest.h>

#include <string>

#include "util/error.h"

namespace diffuse::models {
namespace {

using nlohmann::json;

template <typename Read>
std::string error_of(Read read) {
  try {
    read();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no diffuse::Error)";
}

TEST(ConfigJsonErrors, WrongTypeNamesTheField) {
  const auto message = error_of([] { TextEncoderConfig::from_json(json::parse(R"({"hidden_act": 1})")); });
  EXPECT_EQ(message, "text encoder config: hidden_act: must be a string, not 1");
  EXPECT_EQ(error_of([] { UNetConfig::from_json(json::parse(R"({"block_out_channels": "320"})")); }),
            "unet config: block_out_channels: must be a list of whole numbers, not \"320\"");
  EXPECT_EQ(error_of([] { UNetConfig::from_json(json::parse(R"({"use_linear_projection": 1})")); }),
            "unet config: use_linear_projection: must be true or false, not 1");
  EXPECT_EQ(error_of([] { TinyAutoencoderConfig::from_json(json::parse(R"({"scaling_factor": "1"})")); }),
            "taesd config: scaling_factor: must be a number, not \"1\"");
}

TEST(ConfigJsonErrors, IntegersOutsideIntAreRefused) {
  for (const char* text : {R"({"in_channels": 1e110})", R"({"in_channels": 4294967297})",
                           R"({"in_channels": -1e300})", R"({"attention_head_dim": 1e20})"}) {
    EXPECT_NE(error_of([&] { UNetConfig::from_json(json::parse(text)); })
                  .find("must be a whole number from -2147483648 to 2147483647, not"),
              std::string::npos)
        << text;
  }
  EXPECT_EQ(UNetConfig::from_json(json::parse(R"({"in_channels": 9.0})")).in_channels, 9);
  EXPECT_EQ(error_of([] { UNetConfig::from_json(json::parse(R"({"in_channels": 9.5})")); }),
            "unet config: in_channels: must be a whole number from -2147483648 to 2147483647, not 9.5");
}

// Every config's fields are written and read through one table: to_json then from_json is the same
// config, for each kind, with values other than the defaults.
TEST(ConfigJson, WritingThenReadingGivesTheSameConfig) {
  TextEncoderConfig text;
  text.vocab_size = 1000, text.hidden_size = 64, text.num_heads = 2, text.num_layers = 3, text.projection_dim = 32;
  text.hidden_act = "gelu", text.bos_token_id = 998, text.eos_token_id = 999, text.pad_token_id = 999;
  EXPECT_EQ(TextEncoderConfig::from_json(text.to_json()).to_json(), text.to_json());
  EXPECT_EQ(TextEncoderConfig::from_json(text.to_json()).pad_token_id, 999);
  UNetConfig unet;
  unet.block_out_channels = {32, 64}, unet.cross_attention = {true, false}, unet.num_heads = {2, 4};
  unet.transformer_layers = {1, 2}, unet.sample_size = 16, unet.time_cond_proj_dim = 256, unet.norm_eps = 1e-6;
  EXPECT_EQ(UNetConfig::from_json(unet.to_json()).to_json(), unet.to_json());
  EXPECT_EQ(UNetConfig::from_json(unet.to_json()).num_heads, (std::vector<int>{2, 4}));
  VaeConfig vae;
  vae.block_out_channels = {16, 32}, vae.scaling_factor = 0.13025, vae.latent_channels = 8;
  EXPECT_EQ(VaeConfig::from_json(vae.to_json()).to_json(), vae.to_json());
  TinyAutoencoderConfig tiny;
  tiny.num_encoder_blocks = {1, 2}, tiny.encoder_block_out_channels = {8, 8};
  tiny.num_decoder_blocks = {2, 1}, tiny.decoder_block_out_channels = {8, 8};
  EXPECT_EQ(TinyAutoencoderConfig::from_json(tiny.to_json()).to_json(), tiny.to_json());
  EXPECT_EQ(TinyAutoencoderConfig::from_json(tiny.to_json()).downscale_factor(), 2);
}

TEST(ConfigJsonErrors, EmptyBlockOutChannelsIsRefused) {
  EXPECT_NE(error_of([] { UNetConfig::from_json(json::parse(R"({"block_out_channels": []})")); })
                .find("unet config: block_out_channels is empty"),
            std::string::npos);
  EXPECT_NE(error_of([] { VaeConfig::from_json(json::parse(R"({"block_out_channels": []})")); })
                .find("vae config: block_out_channels has 0 entries"),
            std::string::npos);
  EXPECT_EQ(VaeConfig::from_json(json::parse(R"({"block_out_channels": [8, 16]})")).downscale_factor(), 2);
}

}  // namespace
}  // namespace diffuse::models
