// sd-webui-controlnet's payload (alwayson_scripts.controlnet.args) into the generation request's
// ControlNet units, its names for modules and modes, and errors by JSON field.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "image/png_file.h"
#include "pipeline/generation.h"
#include "server/a1111_api.h"
#include "server/controlnet_api.h"
#include "support/fixtures.h"
#include "util/base64.h"
#include "util/error.h"

namespace diffuse::server {
namespace {

using nlohmann::json;

std::filesystem::path controlnet_api_fixture() { return test::fixtures_dir() / "controlnet"; }

std::string controlnet_api_png_base64(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  return base64_encode(std::string((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>()));
}

json controlnet_api_payload(const json& args) {
  return {{"prompt", "a cat"}, {"alwayson_scripts", {{"controlnet", {{"args", args}}}}}};
}

json controlnet_api_unit() {
  return {{"enabled", true},
          {"image", controlnet_api_png_base64(controlnet_api_fixture() / "control_images/shapes_64x64.png")},
          {"model", "tiny-sd1-cn"}};
}

// The field the server's check would answer 422 with ("no error" when it passes).
std::string controlnet_api_error_field(const json& payload, bool img2img = false) {
  ApiRequest api;
  try {
    api = parse_a1111_request(payload, img2img, {});
    api.request.controlnet_dirs = {controlnet_api_fixture() / "tiny-sd1-cn"};
    pipeline::validate(api.request);
  } catch (const InvalidParameter& error) {
    return with_a1111_field(error, api).parameter();
  }
  return "no error";
}

TEST(ControlNetApi, ReadsAUnitAsSdWebuiControlnetSendsIt) {
  auto unit = controlnet_api_unit();
  unit["image"] = "data:image/png;base64," + unit["image"].get<std::string>();
  unit.update({{"model", "tiny-sd1-cn [a1b2c3d4]"}, {"module", "canny"}, {"threshold_a", 50}, {"threshold_b", 150.5},
               {"weight", 0.8}, {"guidance_start", 0.1}, {"guidance_end", 0.9}, {"control_mode", 2},
               {"resize_mode", "Resize and Fill"}, {"pixel_perfect", true}, {"processor_res", 512}});
  const auto args = json::array({{{"enabled", false}, {"model", "other"}}, unit});
  const auto api = parse_a1111_request(controlnet_api_payload(args), false, {});
  const auto& request = api.request;
  ASSERT_EQ(request.controls.size(), 1u);
  EXPECT_EQ(api.control_args, std::vector<size_t>{1});
  const auto& control = request.controls[0];
  EXPECT_EQ(control.model, "tiny-sd1-cn");
  EXPECT_EQ(control.weight, 0.8);
  EXPECT_EQ(control.start, 0.1);
  EXPECT_EQ(control.end, 0.9);
  EXPECT_EQ(control.preprocessor.kind, image::ControlPreprocessor::Kind::canny);
  EXPECT_EQ(control.preprocessor.canny_low, 50);
  EXPECT_EQ(control.preprocessor.canny_high, 150.5);
  EXPECT_EQ(request.control_mode, "control");
  EXPECT_EQ(request.control_resize, "fit");
  const auto expected = image::read_png(controlnet_api_fixture() / "control_images/shapes_64x64.png").pixels;
  EXPECT_TRUE(control.image.equal(expected));
}

TEST(ControlNetApi, KeepsSdWebuiControlnetsDefaults) {
  const auto request = parse_a1111_request(controlnet_api_payload(json::array({controlnet_api_unit()})), false, {}).request;
  ASSERT_EQ(request.controls.size(), 1u);
  EXPECT_EQ(request.controls[0].weight, 1);
  EXPECT_EQ(request.controls[0].start, 0);
  EXPECT_EQ(request.controls[0].end, 1);
  EXPECT_EQ(request.controls[0].preprocessor.kind, image::ControlPreprocessor::Kind::none);
  EXPECT_EQ(request.control_mode, "balanced");
  EXPECT_EQ(request.control_resize, "crop");  // sd-webui-controlnet's default: Crop and Resize
  // No script, or none enabled: the request's own defaults.
  EXPECT_TRUE(parse_a1111_request({{"prompt", "a cat"}}, false, {}).request.controls.empty());
  const auto disabled = parse_a1111_request(controlnet_api_payload(json::array({{{"enabled", false}}})), false, {}).request;
  EXPECT_TRUE(disabled.controls.empty());
  EXPECT_EQ(disabled.control_resize, "stretch");
}

TEST(ControlNetApi, MapsModuleNamesAndThresholds) {
  const auto preprocessor_for = [](const json& fields) {
    auto unit = controlnet_api_unit();
    unit.update(fields);
    return parse_a1111_request(controlnet_api_payload(json::array({unit})), false, {}).request.controls.at(0).preprocessor;
  };
  EXPECT_EQ(preprocessor_for({{"module", "tile_resample"}, {"threshold_a", 2}}).to_string(), "tile:2");
  EXPECT_EQ(preprocessor_for({{"module", "threshold"}, {"threshold_a", 90}}).to_string(), "threshold:90");
  EXPECT_EQ(preprocessor_for({{"module", "canny"}, {"threshold_a", -1}, {"threshold_b", -1}}).to_string(), "canny:100:200");
  EXPECT_EQ(preprocessor_for({{"module", "invert (from white bg & black line)"}}).to_string(), "invert");
  EXPECT_EQ(preprocessor_for({{"module", "None"}, {"threshold_a", 64}}).to_string(), "none");
  EXPECT_EQ(controlnet_module_list(), json({{"module_list", {"none", "canny", "invert", "threshold", "tile_resample"}}}));
}

TEST(ControlNetApi, Img2imgUnitWithoutImageControlsWithTheInitImage) {
  auto unit = controlnet_api_unit();
  unit.erase("image");
  unit["image"] = "";
  auto payload = controlnet_api_payload(json::array({unit}));
  payload["init_images"] = {controlnet_api_png_base64(controlnet_api_fixture() / "control_images/edges_rect_64x64.png")};
  const auto request = parse_a1111_request(payload, true, {}).request;
  ASSERT_EQ(request.controls.size(), 1u);
  EXPECT_TRUE(request.controls[0].image.equal(request.init_image));
  EXPECT_EQ(controlnet_api_error_field(controlnet_api_payload(json::array({unit}))), "alwayson_scripts.controlnet.args[0].image");
}

TEST(ControlNetApi, ErrorsNameTheUnitsField) {
  const auto with = [](const json& fields, size_t disabled_before = 0) {
    json args = json::array();
    for (size_t i = 0; i < disabled_before; ++i) args.push_back({{"enabled", false}});
    auto unit = controlnet_api_unit();
    unit.update(fields);
    args.push_back(unit);
    return controlnet_api_payload(args);
  };
  EXPECT_EQ(controlnet_api_error_field(with(json::object())), "no error");
  EXPECT_EQ(controlnet_api_error_field(with({{"weight", -0.5}})), "alwayson_scripts.controlnet.args[0].weight");
  EXPECT_EQ(controlnet_api_error_field(with({{"weight", "strong"}})), "alwayson_scripts.controlnet.args[0].weight");
  EXPECT_EQ(controlnet_api_error_field(with({{"guidance_end", 1.5}})), "alwayson_scripts.controlnet.args[0].guidance_end");
  EXPECT_EQ(controlnet_api_error_field(with({{"guidance_start", 0.8}, {"guidance_end", 0.5}})),
            "alwayson_scripts.controlnet.args[0].guidance_start");
  EXPECT_EQ(controlnet_api_error_field(with({{"module", "openpose"}})), "alwayson_scripts.controlnet.args[0].module");
  EXPECT_EQ(controlnet_api_error_field(with({{"module", "canny"}, {"threshold_b", -5}})),
            "alwayson_scripts.controlnet.args[0].threshold_b");
  EXPECT_EQ(controlnet_api_error_field(with({{"control_mode", 3}})), "alwayson_scripts.controlnet.args[0].control_mode");
  EXPECT_EQ(controlnet_api_error_field(with({{"resize_mode", "Stretch it"}})), "alwayson_scripts.controlnet.args[0].resize_mode");
  EXPECT_EQ(controlnet_api_error_field(with({{"image", "not base64!"}})), "alwayson_scripts.controlnet.args[0].image");
  // The net is looked up by validate(): its "unit 1" is the third entry of args.
  EXPECT_EQ(controlnet_api_error_field(with({{"model", "no-such-net [0123abcd]"}}, 2)),
            "alwayson_scripts.controlnet.args[2].model");
  auto two = with({{"control_mode", "Balanced"}});
  auto second = controlnet_api_unit();
  second["control_mode"] = "My prompt is more important";
  two["alwayson_scripts"]["controlnet"]["args"].push_back(second);
  EXPECT_EQ(controlnet_api_error_field(two), "alwayson_scripts.controlnet.args[1].control_mode");
  EXPECT_EQ(controlnet_api_error_field({{"alwayson_scripts", {{"ControlNet", {{"args", 3}}}}}}), "alwayson_scripts.controlnet");
}

}  // namespace
}  // namespace diffuse::server
