// The few-step path as a user drives it: presets, an LCM model, TAESD for the decode and the step
// previews, and the errors for options that do not fit the model.
#include <gtest/gtest.h>

#include "image/png_file.h"
#include "support/fixtures.h"
#include "support/run_diffuse.h"
#include "support/temp_dir.h"

namespace diffuse::cli {
namespace {

namespace fs = std::filesystem;
using test::fast_fixture_dir;
using test::fixtures_dir;
using test::Outcome;
using test::run_diffuse;


class FastCli : public test::TempDirTest {
 protected:
  fs::path out() const { return dir_ / "out.png"; }
  Outcome generate(const std::string& model, std::vector<std::string> extra) {
    std::vector<std::string> args{"generate", "-m", model, "-p", "a photo of a cat", "-o", out().string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_diffuse(args);
  }
  std::string sd1() const { return (fixtures_dir() / "tiny-sd1/diffusers").string(); }
  std::string lcm() const { return (fast_fixture_dir() / "tiny-lcm/diffusers").string(); }
  std::string taesd() const { return (fast_fixture_dir() / "taesd/taesd_decoder.safetensors").string(); }

  // Largest per-channel difference from a reference PNG, in 8-bit levels.
  static int max_levels_from(const fs::path& image, const fs::path& reference) {
    const auto a = image::read_png(image).pixels.to(at::kShort), b = image::read_png(reference).pixels.to(at::kShort);
    EXPECT_EQ(a.sizes(), b.sizes());
    return (a - b).abs().max().item<int>();
  }

  void expect_rejected(const Outcome& outcome, const std::string& message) {
    EXPECT_NE(outcome.exit_code, 0) << outcome.output;
    EXPECT_NE(outcome.output.find(message), std::string::npos) << outcome.output;
    EXPECT_TRUE(fs::is_empty(dir_)) << "output left behind after: " << outcome.output;
  }
};

TEST_F(FastCli, TurboPresetDrawsTheReferenceImageWithOneUnguidedStep) {
  // turbo_tiny-sd1_euler_a_trailing_1_g0.0: seed 5300, diffusers' guidance_scale 0.
  const auto outcome = generate(sd1(), {"--preset", "turbo", "--seed", "5300", "-n", "blurry", "--precision", "fp32"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
  EXPECT_NE(outcome.output.find("warning: the negative prompt is ignored: at a CFG scale of 1 or less"), std::string::npos)
      << outcome.output;
  EXPECT_LE(max_levels_from(out(), fast_fixture_dir() / "refs/turbo_tiny-sd1_euler_a_trailing_1_g0.0.png"), 1);
  EXPECT_EQ(image::read_png(out()).text.at("parameters"),
            "a photo of a cat\nSteps: 1, Sampler: Euler a, CFG scale: 0, Seed: 5300, Size: 64x64, Model: diffusers, "
            "Guidance: none (one UNet pass per step; negative prompt unused), Timestep spacing: trailing");
}

TEST_F(FastCli, FlagsOverrideThePreset) {
  const auto outcome = generate(sd1(), {"--preset", "turbo", "--steps", "2", "--cfg-scale", "3"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
  const auto parameters = image::read_png(out()).text.at("parameters");
  EXPECT_NE(parameters.find("Steps: 2, Sampler: Euler a, CFG scale: 3,"), std::string::npos) << parameters;
  EXPECT_EQ(parameters.find("Guidance:"), std::string::npos) << parameters;  // CFG 3 guides
}

TEST_F(FastCli, LcmPresetOnAnLcmModelFollowsItsGuidanceEmbedding) {
  // lcm_4_g8.0: 4 steps, guidance 8 through the embedding.
  const auto outcome = generate(lcm(), {"--preset", "lcm", "--cfg-scale", "8", "--seed", "5202", "--precision", "fp32", "-p",
                                        "A Painting of a SUNSET, by Claude Monet; 35mm, f/1.8 :)"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
  EXPECT_LE(max_levels_from(out(), fast_fixture_dir() / "refs/lcm_4_g8.0.png"), 1);
  const auto parameters = image::read_png(out()).text.at("parameters");
  EXPECT_NE(parameters.find("Steps: 4, Sampler: LCM, CFG scale: 8,"), std::string::npos) << parameters;
  EXPECT_NE(parameters.find("Guidance: LCM embedding (one UNet pass per step)"), std::string::npos) << parameters;
}

TEST_F(FastCli, TaesdDecodesAndPreviewsTheSteps) {
  const auto steps = dir_ / "steps";
  const auto outcome = generate(sd1(), {"--preset", "turbo", "--steps", "2", "-W", "64", "-H", "64", "--vae",
                                        "taesd:" + taesd(), "--save-steps", steps.string(), "--preview", "taesd"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
  const auto png = image::read_png(out());
  EXPECT_EQ(png.width, 64);  // TAESD's factor 8 over 8x8 latents
  const auto preview = image::read_png(steps / "step-02-x0.png");
  EXPECT_EQ(preview.width, 64);
  // The last step's x0 is the final latents: its TAESD preview is the image itself.
  EXPECT_TRUE(preview.pixels.equal(png.pixels));
}

TEST_F(FastCli, NamesOptionsThatDoNotFitTheModel) {
  expect_rejected(generate(sd1(), {"--guidance-embedding"}),
                  "diffuse: error: --guidance-embedding: only LCM-distilled UNets (time_cond_proj_dim in their "
                  "config) take a guidance embedding; diffusers has none");
  expect_rejected(generate(sd1(), {"--preset", "fast"}), "diffuse: error: --preset: 'fast' is not one of turbo, lcm");
  expect_rejected(generate(sd1(), {"--vae", "taesd.safetensors"}), "diffuse: error: --vae: 'taesd.safetensors' is not taesd:PATH");
  expect_rejected(generate(sd1(), {"--vae", "taesd:/no/such/taesd"}), "diffuse: error: --vae: '/no/such/taesd' does not exist");
  expect_rejected(generate(sd1(), {"--save-steps", (dir_ / "s").string(), "--preview", "taesd"}),
                  "diffuse: error: --preview: taesd needs a TAESD to load");
  // The SD VAE's weights are not a TAESD.
  const auto vae = fixtures_dir() / "tiny-sd1/diffusers/vae/diffusion_pytorch_model.safetensors";
  expect_rejected(generate(sd1(), {"--vae", "taesd:" + vae.string()}), "is not a TAESD layer");
}

TEST(SamplersCli, ListsThePresets) {
  const auto outcome = run_diffuse({"samplers"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
  EXPECT_NE(outcome.output.find("Presets (--preset"), std::string::npos) << outcome.output;
  EXPECT_NE(outcome.output.find("turbo          --sampler euler_a --timestep-spacing trailing --steps 1 --cfg-scale 0"),
            std::string::npos)
      << outcome.output;
  EXPECT_NE(outcome.output.find("lcm            --sampler lcm --steps 4 --cfg-scale 1"), std::string::npos) << outcome.output;
}

}  // namespace
}  // namespace diffuse::cli
