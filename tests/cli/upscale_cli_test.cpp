// `diffuse upscale` as a user runs it: the manifest's own command lines give the reference PNGs (within
// one level), Lanczos gives Pillow's bytes from the hires fixture, progress is reported per tile, and bad
// input is refused by name with no file left behind.
#include <gtest/gtest.h>

#include <sstream>

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

fs::path upscale_fixtures() { return fixtures_dir() / "upscale"; }

class UpscaleCli : public test::TempDirTest {
 protected:
  fs::path out() const { return dir_ / "out.png"; }

  // The manifest's `cli` of a run, with its relative paths made absolute and OUT.png in the test's folder.
  std::vector<std::string> manifest_arguments(const nlohmann::json& run) const {
    std::istringstream words(run.at("cli").get<std::string>());
    std::vector<std::string> args;
    std::string word;
    words >> word;  // "diffuse"
    while (words >> word) {
      if (word == "OUT.png") {
        args.push_back(out().string());
      } else if (word.rfind("inputs/", 0) == 0 || word.rfind("models/", 0) == 0) {
        args.push_back((upscale_fixtures() / word).string());
      } else {
        args.push_back(word);
      }
    }
    return args;
  }

  void expect_rejected(const Outcome& outcome, const std::string& message) {
    EXPECT_EQ(outcome.exit_code, 1) << outcome.output;
    EXPECT_NE(outcome.output.find(message), std::string::npos) << "expected '" << message << "' in: " << outcome.output;
    EXPECT_FALSE(fs::exists(out())) << outcome.output;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      EXPECT_EQ(entry.path().filename().string().find("out"), std::string::npos) << "left behind: " << entry.path();
    }
  }

  std::vector<std::string> upscale_args(const std::string& model, std::vector<std::string> extra = {}) const {
    std::vector<std::string> args{"upscale", (upscale_fixtures() / "inputs/rgb_32x32.png").string(), "-o", out().string(),
                                  "--model", model};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
};

// One run of each file format, layout, scale and image mode, and the tiled x2 run.
TEST_F(UpscaleCli, ManifestCommandLinesGiveTheReferencePngs) {
  const std::set<std::string> chosen = {
      "rrdbnet_x4_safetensors__rgb_32x32", "esrgan_x4_old_pth__rgba_32x24", "esrgan_x4_old_safetensors__grey_24x24",
      "rrdbnet_x2_pth__rgb_29x25", "rrdbnet_x2_safetensors__rgb_96x80__tile32"};
  const auto manifest = test::read_json(upscale_fixtures() / "manifest.json");
  int runs = 0;
  for (const auto& run : manifest.at("runs")) {
    if (!chosen.count(run.at("id"))) continue;
    ++runs;
    fs::remove(out());
    const auto outcome = run_diffuse(manifest_arguments(run));
    ASSERT_EQ(outcome.exit_code, 0) << run.at("id") << ": " << outcome.output;
    const auto written = image::read_png(out());
    const auto expected = image::read_png(upscale_fixtures() / run.at("png").get<std::string>());
    ASSERT_EQ(written.pixels.sizes(), expected.pixels.sizes()) << run.at("id");
    const int max_diff = (written.pixels.to(at::kInt) - expected.pixels.to(at::kInt)).abs().max().item<int>();
    EXPECT_LE(max_diff, 1) << run.at("id");
    if (run.at("tile").get<int>() > 0) {
      EXPECT_NE(outcome.output.find("upscaling 9/9 tiles"), std::string::npos) << outcome.output;
    }
  }
  EXPECT_EQ(runs, 5);
}

// AUTOMATIC1111's Lanczos upscaler, as the hires fixture recorded it: PIL's resize of the first pass.
TEST_F(UpscaleCli, LanczosGivesPillowsBytes) {
  const auto manifest = test::read_json(fixtures_dir() / "hires/manifest.json");
  int checked = 0;
  for (const auto& run : manifest.at("runs")) {
    if (!run.contains("upscale") || run.at("upscale").at("upscaler") != "lanczos") continue;
    const auto& upscale = run.at("upscale");
    const auto refs = fixtures_dir() / "hires/refs";
    std::ostringstream scale;
    scale << upscale.at("scale").get<double>();
    const auto outcome = run_diffuse({"upscale", (refs / upscale.at("lowres_uint8_png").get<std::string>()).string(), "-o",
                                      out().string(), "--model", "lanczos", "--scale", scale.str()});
    ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
    const auto written = image::read_png(out());
    const auto expected = image::read_png(refs / upscale.at("upscaled_png").get<std::string>());
    EXPECT_EQ(written.width, upscale.at("target_width").get<int>());
    EXPECT_EQ(written.height, upscale.at("target_height").get<int>());
    EXPECT_TRUE(at::equal(written.pixels, expected.pixels));
    ++checked;
  }
  EXPECT_GE(checked, 1);
}

TEST_F(UpscaleCli, StableDiffusionCheckpointIsNotAnUpscaler) {
  const auto checkpoint = fixtures_dir() / "tiny-sd1/tiny-sd1.safetensors";
  expect_rejected(run_diffuse(upscale_args(checkpoint.string())), checkpoint.string() + ": not an ESRGAN-family upscaler");
}

TEST_F(UpscaleCli, TileSmallerThanItsOverlap) {
  const auto model = (upscale_fixtures() / "models/rrdbnet_x4.safetensors").string();
  expect_rejected(run_diffuse(upscale_args(model, {"--tile", "8", "--tile-pad", "10"})),
                  "--tile: 8 is smaller than its overlap");
}

TEST_F(UpscaleCli, ScaleTheModelDoesNotHave) {
  const auto model = (upscale_fixtures() / "models/esrgan_x4_old.pth").string();
  expect_rejected(run_diffuse(upscale_args(model, {"--scale", "2"})), "--scale: x2 is not this model's scale");
  expect_rejected(run_diffuse(upscale_args("lanczos")), "--scale: lanczos needs the factor");
  expect_rejected(run_diffuse(upscale_args("bicubic", {"--scale", "2"})), "--model: 'bicubic' is neither lanczos, nearest");
  expect_rejected(run_diffuse(upscale_args(model, {"--precision", "fp16"})), "--precision: 'fp16' is not fp32 or bf16");
}

// 100,000 pixels wide: the x4 output would be 400,000.
TEST_F(UpscaleCli, ImageTooWideToUpscale) {
  const auto wide = dir_ / "wide.png";
  image::write_png(wide, at::zeros({1, 100000, 3}, at::kByte));
  auto args = upscale_args("nearest", {"--scale", "4"});
  args[1] = wide.string();
  expect_rejected(run_diffuse(args), wide.string() + ": 100000x1 upscaled is 400000x4");
}

}  // namespace
}  // namespace diffuse::cli
