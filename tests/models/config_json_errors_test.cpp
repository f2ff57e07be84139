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
  EXPECT_NE(message.find("'hidden_act' must be a string, got 1"), std::string::npos) << message;
  EXPECT_NE(error_of([] { UNetConfig::from_json(json::parse(R"({"block_out_channels": "320"})")); })
                .find("'block_out_channels' must be a list of integers"),
            std::string::npos);
  EXPECT_NE(error_of([] { UNetConfig::from_json(json::parse(R"({"use_linear_projection": 1})")); })
                .find("'use_linear_projection' must be true or false"),
            std::string::npos);
}

TEST(ConfigJsonErrors, IntegersOutsideIntAreRefused) {
  for (const char* text : {R"({"in_channels": 1e110})", R"({"in_channels": 4294967297})",
                           R"({"in_channels": -1e300})", R"({"attention_head_dim": 1e20})"}) {
    EXPECT_NE(error_of([&] { UNetConfig::from_json(json::parse(text)); }).find("an integer in int's range"),
              std::string::npos)
        << text;
  }
  EXPECT_EQ(UNetConfig::from_json(json::parse(R"({"in_channels": 9.0})")).in_channels, 9);
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
