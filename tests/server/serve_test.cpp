// `diffuse serve` driven over loopback as AUTOMATIC1111 clients drive it: the CLI's images for the
// same parameters, progress that moves, interrupt that stops, and bad input answered, never a crash.
#include <httplib.h>

#include <gtest/gtest.h>

#include <fstream>
#include <thread>

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
using test::fixtures_dir;

std::string tiny_model() { return (fixtures_dir() / "tiny-sd1/diffusers").string(); }

// One server for the whole suite: loading it once is what serve is for.
class Serve : public test::TempDirTest {
 protected:
  static void SetUpTestSuite() {
    server_ = new test::ServerProcess({"-m", tiny_model(), "--precision", "fp32", "--max-steps", "400"});
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  httplib::Client client() const {
    httplib::Client c(server_->host(), server_->port());
    c.set_read_timeout(120, 0);
    return c;
  }
  json post(const std::string& path, const json& body, int expected_status = 200) {
    auto c = client();
    const auto response = c.Post(path.c_str(), body.dump(), "application/json");
    EXPECT_TRUE(response) << path;
    if (!response) return nullptr;
    EXPECT_EQ(response->status, expected_status) << response->body;
    return json::parse(response->body, nullptr, false);
  }
  json get(const std::string& path) {
    auto c = client();
    const auto response = c.Get(path.c_str());
    EXPECT_TRUE(response) << path;
    if (!response) return nullptr;
    EXPECT_EQ(response->status, 200) << response->body;
    return json::parse(response->body);
  }
  // The CLI's picture and parameters for the same request.
  image::PngImage cli_image(std::vector<std::string> args) {
    const auto out = dir_ / "cli.png";
    std::vector<std::string> command{"generate", "-m", tiny_model(), "--precision", "fp32", "-o", out.string()};
    command.insert(command.end(), args.begin(), args.end());
    const auto outcome = test::run_diffuse(command);
    EXPECT_EQ(outcome.exit_code, 0) << outcome.output;
    return image::read_png(out);
  }
  static image::PngImage decoded(const json& base64) {
    return image::decode_png(*base64_decode(base64.get<std::string>()), "response image");
  }

  static test::ServerProcess* server_;
};
test::ServerProcess* Serve::server_ = nullptr;

TEST_F(Serve, Txt2imgGivesTheCliImageWithItsInfotext) {
  const json request = {{"prompt", "a photo of a cat"}, {"negative_prompt", "blurry"}, {"seed", 7}, {"steps", 3},
                        {"cfg_scale", 6}, {"width", 64}, {"height", 64}, {"sampler_name", "DPM++ 2M Karras"},
                        {"batch_size", 1}, {"n_iter", 2}};
  const auto response = post("/sdapi/v1/txt2img", request);
  ASSERT_EQ(response.at("images").size(), 2u);
  EXPECT_EQ(response.at("parameters"), request);
  const auto info = json::parse(response.at("info").get<std::string>());
  EXPECT_EQ(info.at("all_seeds"), json::array({7, 8}));
  EXPECT_EQ(info.at("sampler_name"), "DPM++ 2M Karras");
  for (int i = 0; i < 2; ++i) {
    const auto cli = cli_image({"-p", "a photo of a cat", "-n", "blurry", "--seed", std::to_string(7 + i), "--steps", "3",
                                "--cfg-scale", "6", "--width", "64", "--height", "64", "--sampler", "dpm++2m",
                                "--schedule", "karras"});
    const auto served = decoded(response.at("images").at(i));
    EXPECT_TRUE(served.pixels.equal(cli.pixels)) << "image " << i;
    EXPECT_EQ(served.text.at("parameters"), cli.text.at("parameters"));
    EXPECT_EQ(info.at("infotexts").at(i), cli.text.at("parameters"));
  }
}

TEST_F(Serve, APresetGivesTheCliPresetsImage) {
  const auto presets = get("/diffuse/v1/presets");
  ASSERT_EQ(presets.size(), 2u);
  EXPECT_EQ(presets.at(0).at("name"), "turbo");
  EXPECT_EQ(presets.at(1).at("name"), "lcm");
  const auto response = post("/sdapi/v1/txt2img", {{"prompt", "a photo of a cat"}, {"negative_prompt", "blurry"},
                                                    {"seed", 5}, {"width", 64}, {"height", 64}, {"preset", "turbo"}});
  ASSERT_EQ(response.at("images").size(), 1u);
  const auto cli = cli_image({"-p", "a photo of a cat", "-n", "blurry", "--seed", "5", "--width", "64", "--height", "64",
                              "--preset", "turbo"});
  const auto served = decoded(response.at("images").at(0));
  EXPECT_TRUE(served.pixels.equal(cli.pixels));
  EXPECT_EQ(served.text.at("parameters"), cli.text.at("parameters"));
  EXPECT_NE(cli.text.at("parameters").find("Steps: 1, Sampler: Euler a, CFG scale: 0, Seed: 5"), std::string::npos)
      << cli.text.at("parameters");
  const auto unknown = post("/sdapi/v1/txt2img", {{"preset", "fastest"}}, 422);
  EXPECT_EQ(unknown.at("field"), "preset");
  EXPECT_EQ(unknown.at("detail"), "preset: 'fastest' is not one of turbo, lcm");
}

TEST_F(Serve, Img2imgGivesTheCliImage) {
  // The CLI's own txt2img picture as the start, repainted at strength 0.6.
  const auto start = cli_image({"-p", "a red circle", "--seed", "3", "--steps", "2", "--width", "64", "--height", "64"});
  const auto init_path = dir_ / "init.png";
  image::write_png(init_path, start.pixels);
  std::ifstream file(init_path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  const auto response = post("/sdapi/v1/img2img", {{"prompt", "a blue square"}, {"seed", 11}, {"steps", 4}, {"cfg_scale", 7.5},
                                                   {"denoising_strength", 0.6}, {"sampler_name", "Euler a"},
                                                   {"init_images", {"data:image/png;base64," + base64_encode(bytes)}}});
  ASSERT_EQ(response.at("images").size(), 1u);
  const auto cli = cli_image({"-p", "a blue square", "--seed", "11", "--steps", "4", "--strength", "0.6",
                              "--sampler", "euler_a", "--init-image", init_path.string()});
  EXPECT_TRUE(decoded(response.at("images").at(0)).pixels.equal(cli.pixels));
  EXPECT_DOUBLE_EQ(json::parse(response.at("info").get<std::string>()).at("denoising_strength").get<double>(), 0.6);
}

TEST_F(Serve, ProgressMovesAndInterruptStops) {
  const auto submitted = post("/diffuse/v1/jobs", {{"kind", "txt2img"}, {"prompt", "a cat"}, {"steps", 400},
                                                   {"width", 64}, {"height", 64}, {"seed", 1}}, 202);
  const std::string id = submitted.at("id");
  // A1111's progress, and the job's own, both move.
  double fraction = 0;
  int step = 0;
  for (int i = 0; i < 600 && step < 5; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const auto progress = get("/sdapi/v1/progress");
    step = progress.at("state").at("sampling_step");
    fraction = progress.at("progress");
  }
  ASSERT_GE(step, 5);
  EXPECT_GT(fraction, 0.0);
  EXPECT_EQ(get("/sdapi/v1/progress").at("state").at("sampling_steps"), 400);
  const auto job = get("/diffuse/v1/jobs/" + id);
  EXPECT_EQ(job.at("state"), "running");
  EXPECT_TRUE(job.contains("preview"));
  EXPECT_GE(job.at("progress").at("step").get<int>(), step);

  post("/sdapi/v1/interrupt", json::object());
  json final_state;
  for (int i = 0; i < 500; ++i) {
    final_state = get("/diffuse/v1/jobs/" + id + "?preview=false");
    if (final_state.at("state") != "running") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(final_state.at("state"), "interrupted");
  EXPECT_LT(final_state.at("progress").at("step").get<int>(), 400);
  EXPECT_TRUE(final_state.at("result").at("images").empty());
  // The server goes on.
  EXPECT_EQ(post("/sdapi/v1/txt2img", {{"prompt", "a cat"}, {"steps", 1}, {"seed", 2}}).at("images").size(), 1u);
}

TEST_F(Serve, BadInputIsAnsweredByFieldAndTheServerStaysUp) {
  auto c = client();
  auto response = c.Post("/sdapi/v1/txt2img", "{\"prompt\": ", "application/json");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 400);
  EXPECT_NE(response->body.find("malformed JSON"), std::string::npos) << response->body;

  response = c.Post("/sdapi/v1/txt2img", std::string(1000000, '['), "application/json");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 400);
  EXPECT_NE(response->body.find("nested deeper than 256 levels"), std::string::npos) << response->body;

  const auto wrong_type = post("/sdapi/v1/txt2img", {{"prompt", "a cat"}, {"width", "wide"}}, 422);
  EXPECT_EQ(wrong_type.at("field"), "width");
  EXPECT_EQ(wrong_type.at("detail"), "width: must be a whole number, not \"wide\"");
  EXPECT_EQ(post("/sdapi/v1/txt2img", {{"prompt", "a cat"}, {"steps", 401}}, 422).at("field"), "steps");
  EXPECT_EQ(post("/sdapi/v1/txt2img", {{"prompt", 3}}, 422).at("detail"), "prompt: must be a string, not 3");
  EXPECT_EQ(post("/sdapi/v1/txt2img", {{"sampler_name", "Magic"}}, 422).at("field"), "sampler_name");
  EXPECT_EQ(post("/sdapi/v1/txt2img", {{"cfg_scale", -2}}, 422).at("field"), "cfg_scale");
  EXPECT_EQ(post("/sdapi/v1/img2img", {{"init_images", {"not base64!"}}}, 422).at("detail"),
            "init_images: is not base64");
  EXPECT_EQ(post("/sdapi/v1/img2img", {{"init_images", {base64_encode("GIF89a")}}}, 422).at("field"), "init_images");
  EXPECT_EQ(post("/sdapi/v1/txt2img", json::array({1, 2}), 422).at("field"), "body");

  response = c.Post("/sdapi/v1/txt2img", std::string(65u << 20, ' '), "application/json");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 413);
  response = c.Get("/sdapi/v1/nothing");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 404);
  EXPECT_TRUE(server_->alive());
}

TEST_F(Serve, ListsSamplersModelsAndOptions) {
  const auto samplers = get("/sdapi/v1/samplers");
  ASSERT_GE(samplers.size(), 16u);
  EXPECT_EQ(samplers.at(0).at("name"), "Euler");
  const auto models = get("/sdapi/v1/sd-models");
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models.at(0).at("model_name"), "diffusers");
  EXPECT_EQ(get("/sdapi/v1/options").at("sd_model_checkpoint"), "diffusers");
  post("/sdapi/v1/options", {{"CLIP_stop_at_last_layers", 2}});
  EXPECT_EQ(get("/sdapi/v1/options").at("CLIP_stop_at_last_layers"), 2);
  post("/sdapi/v1/options", {{"CLIP_stop_at_last_layers", 1}});
  EXPECT_EQ(post("/sdapi/v1/options", {{"sd_model_checkpoint", "other"}}, 422).at("field"), "sd_model_checkpoint");
  auto c = client();
  const auto page = c.Get("/");
  ASSERT_TRUE(page);
  EXPECT_NE(page->body.find("<title>diffuse</title>"), std::string::npos);
  EXPECT_EQ(page->body.find("http://"), std::string::npos);  // nothing loaded from elsewhere
  EXPECT_EQ(page->body.find("https://"), std::string::npos);
}

// A second server on a port in use must fail, not share the port and take half the first one's clients.
TEST_F(Serve, APortInUseIsNamedAndNotShared) {
  const auto port = std::to_string(server_->port());
  // Time-limited: were the port shared, this server would serve until stopped.
  const auto outcome = test::run_diffuse({"serve", "-m", tiny_model(), "--precision", "fp32", "--port", port}, 60);
  EXPECT_EQ(outcome.exit_code, 1) << outcome.output;
  EXPECT_NE(outcome.output.find("diffuse: error: 127.0.0.1:" + port + ": cannot listen (in use"), std::string::npos)
      << outcome.output;
  // Named before the model is loaded: the port is bound first.
  EXPECT_EQ(outcome.output.find("loading "), std::string::npos) << outcome.output;
  EXPECT_TRUE(server_->alive());
  EXPECT_EQ(get("/sdapi/v1/sd-models").size(), 1u);
}

}  // namespace
}  // namespace diffuse
