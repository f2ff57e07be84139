// `diffuse serve --controlnet-dir` driven over loopback as sd-webui-controlnet's API clients drive
// it: a unit in alwayson_scripts gives the CLI's --control image, /controlnet/detect gives
// `diffuse preprocess`'s map, and bad units are answered 422 by field before any work.
#include <httplib.h>

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "image/png_file.h"
#include "support/fixtures.h"
#include "support/run_diffuse.h"
#include "support/server_process.h"
#include "support/temp_dir.h"
#include "util/base64.h"

namespace diffuse {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path controlnet_serve_fixture() { return test::fixtures_dir() / "controlnet"; }
fs::path controlnet_serve_dir() { return controlnet_serve_fixture() / "tiny-sd1-cn"; }
fs::path controlnet_serve_image() { return controlnet_serve_fixture() / "control_images/shapes_64x64.png"; }
std::string controlnet_serve_model() { return (test::fixtures_dir() / "tiny-sd1/diffusers").string(); }

std::string controlnet_serve_base64(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  return base64_encode(std::string((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>()));
}

image::PngImage controlnet_serve_decoded(const json& base64) {
  return image::decode_png(*base64_decode(base64.get<std::string>()), "response image");
}

class ControlNetServe : public test::TempDirTest {
 protected:
  static void SetUpTestSuite() {
    server_ = new test::ServerProcess({"-m", controlnet_serve_model(), "--precision", "fp32", "--controlnet-dir",
                                       controlnet_serve_dir().string()});
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  json post(const std::string& path, const json& body, int expected_status = 200) {
    httplib::Client client(server_->host(), server_->port());
    client.set_read_timeout(120, 0);
    const auto response = client.Post(path.c_str(), body.dump(), "application/json");
    EXPECT_TRUE(response) << path;
    if (!response) return nullptr;
    EXPECT_EQ(response->status, expected_status) << response->body;
    return json::parse(response->body, nullptr, false);
  }
  json get(const std::string& path) {
    httplib::Client client(server_->host(), server_->port());
    const auto response = client.Get(path.c_str());
    EXPECT_TRUE(response) << path;
    if (!response) return nullptr;
    EXPECT_EQ(response->status, 200) << response->body;
    return json::parse(response->body);
  }
  image::PngImage cli_image(std::vector<std::string> args) {
    const auto out = dir_ / "cli.png";
    std::vector<std::string> command{"generate", "-m", controlnet_serve_model(), "--precision", "fp32", "-o", out.string()};
    command.insert(command.end(), args.begin(), args.end());
    const auto outcome = test::run_diffuse(command);
    EXPECT_EQ(outcome.exit_code, 0) << outcome.output;
    return image::read_png(out);
  }

  static test::ServerProcess* server_;
};
test::ServerProcess* ControlNetServe::server_ = nullptr;

const json kControlNetServeBase = {{"prompt", "a photo of a cat"}, {"seed", 11001}, {"steps", 4}, {"cfg_scale", 6},
                                   {"width", 64}, {"height", 64}, {"sampler_name", "Euler"}};

json controlnet_serve_unit() {
  return {{"enabled", true},
          {"image", "data:image/png;base64," + controlnet_serve_base64(controlnet_serve_image())},
          {"module", "canny"},
          {"threshold_a", 50},
          {"threshold_b", 150},
          {"model", "tiny-sd1-cn [0123abcd]"},
          {"weight", 0.8},
          {"guidance_start", 0.25},
          {"guidance_end", 0.75},
          {"control_mode", "My prompt is more important"},
          {"resize_mode", "Just Resize"},
          {"pixel_perfect", true},
          {"processor_res", 512}};
}

json controlnet_serve_payload(const json& args) {
  auto payload = kControlNetServeBase;
  payload["alwayson_scripts"] = {{"controlnet", {{"args", args}}}};
  return payload;
}

TEST_F(ControlNetServe, Txt2imgUnitGivesTheCliControlImage) {
  const auto disabled_first = json::array({{{"enabled", false}}, controlnet_serve_unit()});
  const auto response = post("/sdapi/v1/txt2img", controlnet_serve_payload(disabled_first));
  ASSERT_EQ(response.at("images").size(), 1u);
  const auto served = controlnet_serve_decoded(response.at("images").at(0));
  const auto cli = cli_image({"-p", "a photo of a cat", "--seed", "11001", "--steps", "4", "--cfg-scale", "6",
                              "--width", "64", "--height", "64", "--sampler", "euler", "--controlnet-dir",
                              controlnet_serve_dir().string(), "--control",
                              "tiny-sd1-cn:" + controlnet_serve_image().string() + ":0.8:0.25:0.75",
                              "--control-preprocess", "canny:50:150", "--control-mode", "prompt",
                              "--control-resize", "stretch"});
  EXPECT_TRUE(served.pixels.equal(cli.pixels));
  EXPECT_EQ(served.text.at("parameters"), cli.text.at("parameters"));
  // The unit steered the picture: without it the same seed gives another.
  const auto plain = post("/sdapi/v1/txt2img", kControlNetServeBase);
  EXPECT_FALSE(controlnet_serve_decoded(plain.at("images").at(0)).pixels.equal(served.pixels));
}

TEST_F(ControlNetServe, DetectGivesThePreprocessCommandsMap) {
  const auto response = post("/controlnet/detect", {{"controlnet_module", "canny"},
                                                    {"controlnet_input_images", {controlnet_serve_base64(controlnet_serve_image())}},
                                                    {"controlnet_processor_res", 512},
                                                    {"controlnet_threshold_a", 50},
                                                    {"controlnet_threshold_b", 150}});
  ASSERT_EQ(response.at("images").size(), 1u);
  EXPECT_EQ(response.at("info"), "Success");
  const auto out = dir_ / "canny.png";
  const auto outcome = test::run_diffuse({"preprocess", "canny:50:150", controlnet_serve_image().string(), out.string()});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
  const auto expected = image::read_png(out).pixels;
  const auto detected = controlnet_serve_decoded(response.at("images").at(0)).pixels;
  EXPECT_TRUE(detected.equal(expected));
  EXPECT_GT(expected.gt(0).sum().item<int64_t>(), 0);  // edges were found: the map is not blank
  EXPECT_EQ(post("/controlnet/detect", {{"controlnet_module", "depth_midas"}, {"controlnet_input_images", {"x"}}}, 422)
                .at("field"),
            "controlnet_module");
  EXPECT_EQ(post("/controlnet/detect", {{"controlnet_module", "canny"}}, 422).at("field"), "controlnet_input_images");
}

TEST_F(ControlNetServe, ListsTheNetsAndModules) {
  EXPECT_EQ(get("/controlnet/model_list"), json({{"model_list", {"diffusers", "tiny-sd1-cn"}}}));
  const auto modules = get("/controlnet/module_list").at("module_list");
  EXPECT_EQ(modules, json({"none", "canny", "invert", "threshold", "tile_resample"}));
}

TEST_F(ControlNetServe, BadUnitsAreAnsweredByFieldBeforeAnyWork) {
  auto unit = controlnet_serve_unit();
  unit["weight"] = -1;
  auto answer = post("/sdapi/v1/txt2img", controlnet_serve_payload(json::array({unit})), 422);
  EXPECT_EQ(answer.at("field"), "alwayson_scripts.controlnet.args[0].weight");
  EXPECT_EQ(answer.at("detail"), "alwayson_scripts.controlnet.args[0].weight: -1 must be a finite number >= 0");
  unit = controlnet_serve_unit();
  unit["module"] = "openpose_full";
  EXPECT_EQ(post("/sdapi/v1/txt2img", controlnet_serve_payload(json::array({unit})), 422).at("field"),
            "alwayson_scripts.controlnet.args[0].module");
  unit = controlnet_serve_unit();
  unit["model"] = "control_v11p_sd15_canny [d14c016b]";
  answer = post("/sdapi/v1/img2img", [&] {
    auto payload = controlnet_serve_payload(json::array({{{"enabled", false}}, unit}));
    payload["init_images"] = {controlnet_serve_base64(controlnet_serve_image())};
    return payload;
  }(), 422);
  EXPECT_EQ(answer.at("field"), "alwayson_scripts.controlnet.args[1].model");
  EXPECT_NE(answer.at("detail").get<std::string>().find("control_v11p_sd15_canny"), std::string::npos) << answer;
  EXPECT_TRUE(server_->alive());
}

}  // namespace
}  // namespace diffuse
