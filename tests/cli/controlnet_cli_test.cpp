// ControlNet from the command line: manifest runs from their `cli` flags alone (the PNG within one
// level of diffusers'), nets looked up by name in a --controlnet-dir, the units in the PNG's
// parameters, and bad units refused before anything is written.
#include <gtest/gtest.h>

#include "image/png_file.h"
#include "support/fixtures.h"
#include "support/run_diffuse.h"
#include "support/temp_dir.h"

namespace diffuse::cli {
namespace {

namespace fs = std::filesystem;
using test::fixtures_dir;
using test::Outcome;
using test::run_diffuse;

class ControlNetCli : public test::TempDirTest {
 protected:
  fs::path refs() const { return fixtures_dir() / "controlnet/refs"; }
  fs::path out() const { return dir_ / "out.png"; }

  nlohmann::json run(const std::string& id) const {
    const auto manifest = test::read_json(fixtures_dir() / "controlnet/manifest.json");
    for (const auto& r : manifest.at("runs")) {
      if (r.at("id") == id) return r;
    }
    throw std::runtime_error("no run " + id);
  }

  // The manifest's `cli` entry as flags; its paths are relative to the refs folder.
  std::vector<std::string> flags_of(const nlohmann::json& r) const {
    const auto& cli = r.at("cli");
    const auto model = test::read_json(fixtures_dir() / "controlnet/manifest.json").at("models").at(r.at("model").get<std::string>());
    std::vector<std::string> args{"generate", "-m", (refs() / model.at("model_dir").get<std::string>()).string(),
                                  "-p", r.at("prompt").get<std::string>(), "--steps",
                                  std::to_string(r.at("num_inference_steps").get<int>()), "--cfg-scale",
                                  std::to_string(cli.at("cfg_scale").get<double>()), "--sampler",
                                  cli.at("sampler").get<std::string>(), "--seed", std::to_string(r.at("seed").get<int>()),
                                  "-W", std::to_string(r.at("width").get<int>()), "-H",
                                  std::to_string(r.at("height").get<int>()), "--precision", "fp32", "-o", out().string()};
    if (!r.at("negative_prompt").is_null()) args.insert(args.end(), {"-n", r.at("negative_prompt").get<std::string>()});
    if (!cli.at("schedule").is_null()) args.insert(args.end(), {"--schedule", cli.at("schedule").get<std::string>()});
    for (const auto& unit : cli.at("control")) {
      // FILE:IMAGE:WEIGHT:START:END, the two paths made absolute.
      const auto text = unit.get<std::string>();
      const auto first = text.find(':'), second = text.find(':', first + 1);
      args.push_back("--control");
      args.push_back((refs() / text.substr(0, first)).string() + ":" +
                     (refs() / text.substr(first + 1, second - first - 1)).string() + text.substr(second));
    }
    if (cli.at("control_guess_mode").get<bool>()) args.push_back("--control-guess-mode");
    return args;
  }

  void expect_reference_png(const Outcome& outcome, const nlohmann::json& r) {
    ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
    const auto made = image::read_png(out());
    const auto expected = image::read_png(refs() / r.at("png").get<std::string>());
    ASSERT_EQ(made.pixels.sizes(), expected.pixels.sizes());
    const int levels = (made.pixels.to(at::kShort) - expected.pixels.to(at::kShort)).abs().max().item<int>();
    std::printf("%s from the CLI: image max %d levels\n", r.at("id").get<std::string>().c_str(), levels);
    EXPECT_LE(levels, 1);
  }

  void expect_rejected(const Outcome& outcome, const std::string& message) {
    EXPECT_NE(outcome.exit_code, 0) << outcome.output;
    EXPECT_NE(outcome.output.find(message), std::string::npos) << "expected '" << message << "' in: " << outcome.output;
    EXPECT_FALSE(fs::exists(out())) << outcome.output;
  }
};

TEST_F(ControlNetCli, GivesTheReferenceImageFromTheManifestFlags) {
  const auto r = run("cn_euler_8_s1.0");
  const auto outcome = run_diffuse(flags_of(r));
  expect_reference_png(outcome, r);
  const auto parameters = image::read_png(out()).text.at("parameters");
  EXPECT_NE(parameters.find("ControlNet 0: \"Module: none, Model: tiny-sd1-cn, Weight: 1, Resize Mode: Just Resize, "
                            "Guidance Start: 0, Guidance End: 1, Control Mode: Balanced\""),
            std::string::npos)
      << parameters;
}

TEST_F(ControlNetCli, TwoUnitsAndGuessModeFromTheManifestFlags) {
  for (const std::string id : {"cn_multi_euler_8", "cn_guess_euler_8_s1.0"}) {
    const auto r = run(id);
    expect_reference_png(run_diffuse(flags_of(r)), r);
    fs::remove(out());
  }
}

TEST_F(ControlNetCli, FindsANetByNameInAControlNetDir) {
  const auto r = run("cn_euler_8_s0.5");
  auto args = flags_of(r);
  for (auto& arg : args) {
    const auto at = arg.find("tiny-sd1-cn.safetensors:");
    if (at != std::string::npos) arg = "tiny-sd1-cn" + arg.substr(at + std::string("tiny-sd1-cn.safetensors").size());
  }
  args.insert(args.end(), {"--controlnet-dir", (fixtures_dir() / "controlnet/tiny-sd1-cn").string()});
  expect_reference_png(run_diffuse(args), r);
}

TEST_F(ControlNetCli, RefusesBadUnitsBeforeWriting) {
  auto args = flags_of(run("cn_euler_8_s1.0"));
  const auto unit = std::find(args.begin(), args.end(), "--control") + 1;
  const auto net = unit->substr(0, unit->find(':'));
  const auto image = (refs() / "../control_images/edges_circle_64x64.png").string();
  *unit = net + ":" + image + ":-1";
  expect_rejected(run_diffuse(args), "--control: unit 1: weight -1 must be a finite number >= 0");
  *unit = net + ":" + image + ":1:0.9:0.1";
  expect_rejected(run_diffuse(args), "--control: unit 1: start 0.9 is after end 0.1");
  *unit = net + ":" + (fixtures_dir() / "controlnet/manifest.json").string();
  expect_rejected(run_diffuse(args), "--control: unit 1:");
  *unit = (fixtures_dir() / "controlnet/tiny-sd1-cn/tiny-sd1-cn.safetensors").string() + ":" + image;
  args.push_back("--control-mode");
  args.push_back("louder");
  expect_rejected(run_diffuse(args), "--control-mode: 'louder' is not balanced, prompt or control");
}

TEST_F(ControlNetCli, RefusesANetForAnotherBaseModel) {
  auto args = flags_of(run("xl_cn_euler_6_s1.0"));
  auto unit = std::find(args.begin(), args.end(), "--control") + 1;
  *unit = (fixtures_dir() / "controlnet/tiny-sd1-cn/tiny-sd1-cn.safetensors").string() + unit->substr(unit->find(':', unit->find("diffusers")));
  expect_rejected(run_diffuse(args), "--control: unit 1: " + (fixtures_dir() / "controlnet/tiny-sd1-cn/tiny-sd1-cn.safetensors").string() +
                                         " is a ControlNet for an SD 1.x/2.x-style model (text width 32); diffusers is "
                                         "SDXL (text width 64, size conditioning)");
}

// --control-preprocess makes each image into its map first: the same picture as preprocessing it with
// `diffuse preprocess` and giving the map, and the PNG's parameters name the module.
TEST_F(ControlNetCli, PreprocessesTheControlImageAsThePreprocessCommandDoes) {
  const auto photo = fixtures_dir() / "canny/cases/rgb_shapes_64x64_100_200.png";
  const auto map = dir_ / "edges.png";
  const auto preprocessed = run_diffuse({"preprocess", "canny", photo.string(), "-o", map.string()});
  ASSERT_EQ(preprocessed.exit_code, 0) << preprocessed.output;

  auto args = flags_of(run("cn_euler_8_s1.0"));
  auto unit = std::find(args.begin(), args.end(), "--control") + 1;
  const auto net = unit->substr(0, unit->find(':'));
  *unit = net + ":" + map.string();
  const auto given_map = run_diffuse(args);
  ASSERT_EQ(given_map.exit_code, 0) << given_map.output;
  const auto expected = image::read_png(out());
  fs::remove(out());

  *unit = net + ":" + photo.string();
  args.insert(args.end(), {"--control-preprocess", "canny:100:200"});
  const auto preprocessing = run_diffuse(args);
  ASSERT_EQ(preprocessing.exit_code, 0) << preprocessing.output;
  const auto made = image::read_png(out());
  EXPECT_TRUE(at::equal(made.pixels, expected.pixels));
  EXPECT_NE(made.text.at("parameters").find("ControlNet 0: \"Module: canny, Model: tiny-sd1-cn"), std::string::npos)
      << made.text.at("parameters");
  fs::remove(out());

  args.back() = "sobel";
  expect_rejected(run_diffuse(args),
                  "--control-preprocess: control preprocessor: unknown 'sobel' (known: canny, invert, threshold, tile, none)");
}

// The hires fix's second pass keeps the units, their maps resized to the larger size.
TEST_F(ControlNetCli, UnitsSteerTheHiresPassToo) {
  auto args = flags_of(run("cn_euler_8_s1.0"));
  args.insert(args.end(), {"--hires-scale", "2", "--hires-steps", "2"});
  const auto outcome = run_diffuse(args);
  ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
  const auto made = image::read_png(out());
  EXPECT_EQ(made.width, 2 * run("cn_euler_8_s1.0").at("width").get<int>());
  const auto& parameters = made.text.at("parameters");
  EXPECT_NE(parameters.find("Hires upscale: 2"), std::string::npos) << parameters;
  EXPECT_NE(parameters.find("ControlNet 0: \"Module: none, Model: tiny-sd1-cn"), std::string::npos) << parameters;
}

}  // namespace
}  // namespace diffuse::cli
