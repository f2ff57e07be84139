// The hires fix from the command line: a manifest run of ../shared/fixtures/hires from its `cli`
// entry alone, its PNG within a level and its parameters as AUTOMATIC1111 writes them; bad hires
// flags refused by their flag names before anything is written.
#include <gtest/gtest.h>

#include <sstream>

#include "image/png_file.h"
#include "support/fixtures.h"
#include "support/run_diffuse.h"
#include "support/temp_dir.h"

namespace diffuse::cli {
namespace {

namespace fs = std::filesystem;

std::string cli_number(const nlohmann::json& value) {
  std::ostringstream text;
  text << value.get<double>();
  return text.str();
}

class HiresCli : public test::TempDirTest {
 protected:
  fs::path hires_dir() const { return test::fixtures_dir() / "hires"; }
  fs::path out() const { return dir_ / "out.png"; }

  // The first-pass flags of a manifest run; its hires flags are the caller's.
  std::vector<std::string> first_pass_args(const nlohmann::json& run) const {
    const auto& cli = run.at("cli");
    return {"generate", "-m", (test::fixtures_dir() / "tiny-sd1/diffusers").string(), "-p", run.at("prompt").get<std::string>(),
            "--steps", std::to_string(run.at("first_pass").at("num_inference_steps").get<int>()), "--sampler",
            cli.at("sampler").get<std::string>(), "--cfg-scale", cli_number(cli.at("cfg_scale")), "--seed",
            std::to_string(run.at("seed").get<uint64_t>()), "-W", std::to_string(run.at("width").get<int>()), "-H",
            std::to_string(run.at("height").get<int>()), "--precision", "fp32", "-o", out().string()};
  }
};

TEST_F(HiresCli, GivesTheReferenceImageFromTheFlags) {
  const auto manifest = test::read_json(hires_dir() / "manifest.json");
  const auto& run = manifest.at("runs").at(0);
  const auto& cli = run.at("cli");
  ASSERT_EQ(cli.at("hires_upscaler"), "latent");
  auto args = first_pass_args(run);
  for (const auto& [flag, key] : {std::pair{"--hires-scale", "hires_scale"}, std::pair{"--hires-denoise", "hires_denoise"}}) {
    args.insert(args.end(), {flag, cli_number(cli.at(key))});
  }
  args.insert(args.end(), {"--hires-upscaler", cli.at("hires_upscaler").get<std::string>(), "--hires-steps",
                           std::to_string(cli.at("hires_steps").get<int>())});
  const auto outcome = test::run_diffuse(args);
  ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
  const int total = run.at("first_pass").at("unet_calls").get<int>() + run.at("second_pass").at("unet_calls").get<int>();
  EXPECT_NE(outcome.output.find("step " + std::to_string(total) + "/" + std::to_string(total)), std::string::npos)
      << outcome.output;
  const auto made = image::read_png(out());
  const auto expected = image::read_png(hires_dir() / "refs" / run.at("second_pass").at("png").get<std::string>());
  ASSERT_EQ(made.pixels.sizes(), expected.pixels.sizes());
  EXPECT_LE((made.pixels.to(at::kShort) - expected.pixels.to(at::kShort)).abs().max().item<int>(), 1);
  const std::string parameters = made.text.at("parameters");
  EXPECT_NE(parameters.find("Size: 64x64"), std::string::npos) << parameters;
  EXPECT_NE(parameters.find(", Denoising strength: 0.55, Hires upscale: 2, Hires steps: 6, Hires upscaler: Latent"),
            std::string::npos)
      << parameters;
}

// The second pass's previews are larger than the first's: the sheet shows them all at one size.
TEST_F(HiresCli, SavesTheStepsOfBothPasses) {
  const auto manifest = test::read_json(hires_dir() / "manifest.json");
  const auto& run = manifest.at("runs").at(0);
  auto args = first_pass_args(run);
  const auto steps_dir = dir_ / "steps";
  args.insert(args.end(), {"--hires-scale", "2", "--hires-steps", "2", "--save-steps", steps_dir.string()});
  const auto outcome = test::run_diffuse(args);
  ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
  const int total = run.at("first_pass").at("num_inference_steps").get<int>() + 2;
  EXPECT_TRUE(fs::exists(steps_dir / ("step-" + std::to_string(total) + "-noisy.png"))) << outcome.output;
  EXPECT_TRUE(fs::exists(steps_dir / "steps.png")) << outcome.output;
}

TEST_F(HiresCli, RefusesBadFlagsByName) {
  const auto manifest = test::read_json(hires_dir() / "manifest.json");
  const auto base = first_pass_args(manifest.at("runs").at(0));
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"--hires-denoise", "1.5"}, "--hires-denoise: 1.5 must be more than 0 and at most 1"},
      {{"--hires-upscaler", "bilinear-ish"}, "--hires-upscaler: 'bilinear-ish' is not one of latent"},
      {{"--hires-size", "100"}, "--hires-size: '100' is not WxH"},
      {{"--hires-size", "100x0"}, "--hires-size: gives 100x100, whose sides must be positive multiples of"},
      {{"--hires-sampler", "nope"}, "--hires-sampler:"},
  };
  for (const auto& [extra, message] : cases) {
    auto args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    const auto outcome = test::run_diffuse(args);
    EXPECT_NE(outcome.exit_code, 0) << outcome.output;
    EXPECT_NE(outcome.output.find(message), std::string::npos) << "expected '" << message << "' in: " << outcome.output;
    EXPECT_FALSE(fs::exists(out())) << outcome.output;
  }
}

}  // namespace
}  // namespace diffuse::cli
