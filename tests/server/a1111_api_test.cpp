// AUTOMATIC1111's JSON fields into the generation request: names, defaults, limits, errors by field.
#include "server/a1111_api.h"

#include <gtest/gtest.h>

#include "util/error.h"

namespace diffuse::server {
namespace {

using nlohmann::json;

std::string field_of_error(const json& payload, bool img2img = false, ServeLimits limits = {}) {
  try {
    parse_a1111_request(payload, img2img, limits);
  } catch (const InvalidParameter& error) {
    return error.parameter();
  }
  return "no error";
}

TEST(A1111Api, SamplerNamesAsTheWebUiWritesThem) {
  pipeline::GenerationRequest request;
  const std::vector<std::tuple<std::string, std::string, std::string, std::string>> cases = {
      {"Euler a", "", "euler_a", "default"},
      {"DPM++ 2M Karras", "", "dpm++2m", "karras"},
      {"DPM++ 2M", "Karras", "dpm++2m", "karras"},
      {"dpm++2m", "Automatic", "dpm++2m", "default"},
      {"DDIM", "", "ddim", "default"},
      {"LCM", "", "lcm", "default"},
      {"Euler", "SGM Uniform", "euler", "sgm_uniform"},
  };
  for (const auto& [name, scheduler, sampler, schedule] : cases) {
    set_sampler_from_a1111(request, name, scheduler);
    EXPECT_EQ(request.sampler, sampler) << name;
    EXPECT_EQ(request.schedule, schedule) << name << " / " << scheduler;
  }
  EXPECT_THROW(set_sampler_from_a1111(request, "Euler", "Sometimes"), InvalidParameter);
}

TEST(A1111Api, DefaultsAndBatches) {
  const auto api = parse_a1111_request({{"prompt", "a cat"}, {"batch_size", 2}, {"n_iter", 3}, {"seed", 5}}, false, {});
  EXPECT_EQ(api.request.prompt, "a cat");
  EXPECT_EQ(api.request.steps, 20);
  EXPECT_EQ(api.request.cfg_scale, 7.0);
  EXPECT_EQ(api.request.width, 0);  // the model's size
  EXPECT_EQ(api.request.batch_count, 6);
  EXPECT_EQ(api.request.seed, 5u);
  EXPECT_EQ(api.request.sampler, "euler");
  const auto random = parse_a1111_request({{"seed", -1}}, false, {});
  EXPECT_LT(random.request.seed, 4294967296ull);
  const auto clip = parse_a1111_request({{"override_settings", {{"CLIP_stop_at_last_layers", 2}}}}, false, {});
  EXPECT_EQ(clip.request.clip_skip, 2);
}

TEST(A1111Api, ErrorsNameTheField) {
  ServeLimits limits;
  limits.max_images = 4;
  EXPECT_EQ(field_of_error({{"batch_size", 3}, {"n_iter", 2}}, false, limits), "batch_size");
  EXPECT_EQ(field_of_error({{"width", 4096}}), "width");
  EXPECT_EQ(field_of_error({{"steps", 2.5}}), "steps");
  EXPECT_EQ(field_of_error({{"seed", -7}}), "seed");
  EXPECT_EQ(field_of_error({{"send_images", "yes"}}), "send_images");
  EXPECT_EQ(field_of_error({{"override_settings", 1}}), "override_settings");
  EXPECT_EQ(field_of_error({{"prompt", "x"}}, true), "init_images");
  EXPECT_EQ(field_of_error({{"init_images", json::array()}}, true), "init_images");
  EXPECT_EQ(field_of_error(json::array()), "body");
  EXPECT_EQ(field_of_error({{"prompt", "x"}, {"unknown_field", 1}}), "no error");
  EXPECT_EQ(field_of_error({{"preset", "fast"}}), "preset");
  EXPECT_EQ(field_of_error({{"preset", 1}}), "preset");
  limits.max_steps = 2;
  EXPECT_EQ(field_of_error({{"preset", "lcm"}}, false, limits), "steps");  // its 4 steps are over the limit
}

// "preset" is diffuse's: `diffuse generate --preset`, filling in only what the payload leaves out.
TEST(A1111Api, PresetsFillInWhatThePayloadLeavesOut) {
  const auto turbo = parse_a1111_request({{"prompt", "a cat"}, {"preset", "turbo"}}, false, {}).request;
  EXPECT_EQ(turbo.sampler, "euler_a");
  EXPECT_EQ(turbo.timestep_spacing, "trailing");
  EXPECT_EQ(turbo.steps, 1);
  EXPECT_EQ(turbo.cfg_scale, 0.0);
  const auto mine = parse_a1111_request({{"preset", "turbo"}, {"steps", 3}, {"cfg_scale", 1.5}, {"sampler_name", "DDIM"}},
                                        false, {}).request;
  EXPECT_EQ(mine.sampler, "ddim");
  EXPECT_EQ(mine.timestep_spacing, "trailing");
  EXPECT_EQ(mine.steps, 3);
  EXPECT_EQ(mine.cfg_scale, 1.5);
  const auto lcm = parse_a1111_request({{"preset", "lcm"}, {"sampler_index", "Euler"}}, false, {}).request;
  EXPECT_EQ(lcm.sampler, "euler");
  EXPECT_EQ(lcm.timestep_spacing, "");
  EXPECT_EQ(lcm.steps, 4);
  EXPECT_EQ(lcm.cfg_scale, 1.0);

  const auto listed = diffuse_presets();
  ASSERT_EQ(listed.size(), 2u);
  const json turbo_listed = {
      {"name", "turbo"}, {"sampler_name", "Euler a"}, {"timestep_spacing", "trailing"}, {"steps", 1}, {"cfg_scale", 0.0},
      {"description", "SD-Turbo, SDXL-Turbo and other adversarially distilled models (1-4 steps, no CFG)"}};
  EXPECT_EQ(listed.at(0), turbo_listed);
  EXPECT_EQ(listed.at(1).at("sampler_name"), "LCM");
  EXPECT_TRUE(listed.at(1).at("timestep_spacing").is_null());
}

}  // namespace
}  // namespace diffuse::server
