// Real-ESRGAN's inference against every run of ../shared/fixtures/upscale (its own torch RRDBNet and
// RealESRGANer, float32): the raw net output (colour and alpha passes) within 1e-4 of the reference's
// largest magnitude, the final float image likewise, and the PNG bytes within one level (the manifest's
// rule: round half to even of a float32 product). Tiles against the manifest's tile list and the tiled
// references; bad tile settings refused by name.
#include "pipeline/upscale.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <memory>

#include "image/png_file.h"
#include "models/kernel_options.h"
#include "support/fixtures.h"
#include "util/error.h"

namespace diffuse::pipeline {
namespace {

namespace fs = std::filesystem;

fs::path upscale_dir() { return test::fixtures_dir() / "upscale"; }
const nlohmann::json& upscale_manifest() {
  static const auto manifest = test::read_json(upscale_dir() / "manifest.json");
  return manifest;
}

// Each fixture file loads once for all its runs.
NeuralUpscaler& upscaler_for(const std::string& file) {
  static std::map<std::string, std::unique_ptr<NeuralUpscaler>> loaded;
  auto& slot = loaded[file];
  if (!slot) slot = std::make_unique<NeuralUpscaler>(NeuralUpscaler::load(upscale_dir() / file, at::kFloat));
  return *slot;
}

struct ByteDifference {
  int max = 0;
  int64_t count = 0;
};

ByteDifference byte_difference(const at::Tensor& a, const at::Tensor& b) {
  const auto diff = (a.to(at::kInt) - b.to(at::kInt)).abs();
  return {diff.max().item<int>(), diff.ne(0).sum().item<int64_t>()};
}

std::vector<std::string> run_ids() {
  std::vector<std::string> ids;
  for (const auto& run : upscale_manifest().at("runs")) ids.push_back(run.at("id"));
  return ids;
}

class UpscaleRuns : public ::testing::TestWithParam<std::string> {
 protected:
  const nlohmann::json& run() const {
    for (const auto& run : upscale_manifest().at("runs")) {
      if (run.at("id") == GetParam()) return run;
    }
    throw std::runtime_error("no run " + GetParam());
  }
};

TEST_P(UpscaleRuns, MatchesRealEsrgan) {
  const auto& r = run();
  auto& upscaler = upscaler_for(r.at("model_file"));
  EXPECT_EQ(upscaler.scale(), r.at("scale").get<int>());
  const auto input = image::read_png(upscale_dir() / r.at("input").get<std::string>());
  UpscaleOptions options;
  options.tile = r.at("tile");
  if (!r.at("tile_pad").is_null()) options.tile_pad = r.at("tile_pad");
  const auto result = upscaler.upscale(input.pixels, options);

  const auto net_out = test::read_reference(upscale_dir() / r.at("net_out").get<std::string>());
  ASSERT_EQ(result.net_out.sizes(), net_out.sizes());
  const double net_error = test::relative_max_error(result.net_out, net_out);
  EXPECT_LT(net_error, test::kComponentTolerance);
  char error_text[32];
  std::snprintf(error_text, sizeof error_text, "%.2e", net_error);
  RecordProperty("net_out_relative_error", error_text);
  if (r.contains("alpha_net_out")) {
    const auto alpha = test::read_reference(upscale_dir() / r.at("alpha_net_out").get<std::string>());
    ASSERT_TRUE(result.alpha_net_out.defined());
    EXPECT_LT(test::relative_max_error(result.alpha_net_out, alpha), test::kComponentTolerance);
  } else {
    EXPECT_FALSE(result.alpha_net_out.defined());
  }
  if (r.contains("image")) {
    const auto image = test::read_reference(upscale_dir() / r.at("image").get<std::string>());
    ASSERT_EQ(result.image.sizes(), image.sizes());
    EXPECT_LT(test::relative_max_error(result.image, image), test::kComponentTolerance);
  }

  const auto expected = image::read_png(upscale_dir() / r.at("png").get<std::string>());
  const auto pixels = float_image_to_bytes(result.image);
  ASSERT_EQ(pixels.sizes(), expected.pixels.sizes());
  EXPECT_EQ(pixels.size(1), r.at("out_size")[0].get<int64_t>());
  EXPECT_EQ(pixels.size(0), r.at("out_size")[1].get<int64_t>());
  const auto diff = byte_difference(pixels, expected.pixels);
  EXPECT_LE(diff.max, 1) << diff.count << " bytes differ";
  RecordProperty("bytes_differing", static_cast<int>(diff.count));
}

INSTANTIATE_TEST_SUITE_P(Manifest, UpscaleRuns, ::testing::ValuesIn(run_ids()),
                         [](const auto& info) { return info.param; });

// bf16 (oneDNN's kernels, fp32 accumulation) on the CPU classes that run it: close to the fp32
// reference, though not within its tolerance; the bytes a few levels off.
TEST(UpscaleBf16, CloseToTheFp32Reference) {
  if (!models::bf16_supported()) GTEST_SKIP() << "bf16 needs AVX-512";
  auto upscaler = NeuralUpscaler::load(upscale_dir() / "models/rrdbnet_x4.safetensors", at::kBFloat16);
  EXPECT_EQ(upscaler.dtype(), at::kBFloat16);
  const auto input = image::read_png(upscale_dir() / "inputs/rgb_96x80.png");
  const auto result = upscaler.upscale(input.pixels, {});
  const auto reference = test::read_reference(upscale_dir() / "refs/rrdb_x4__rgb_96x80_net_out.bin");
  const double error = test::relative_max_error(result.net_out, reference);
  EXPECT_LT(error, 0.05);
  EXPECT_GT(error, test::kComponentTolerance);  // it is bf16 that ran
  RecordProperty("net_out_relative_error", std::to_string(error));
  const auto expected = image::read_png(upscale_dir() / "refs/rrdb_x4__rgb_96x80.png");
  EXPECT_LE(byte_difference(float_image_to_bytes(result.image), expected.pixels).max, 8);
}

TEST(UpscaleTiles, GridAsTheManifestLists) {
  for (const auto& tiled : upscale_manifest().at("tiled")) {
    const auto input = image::read_png(upscale_dir() / tiled.at("input").get<std::string>());
    const auto tiles = upscale_tiles(input.width, input.height, tiled.at("tile"), tiled.at("tile_pad"));
    const auto& expected = tiled.at("tiles");
    ASSERT_EQ(tiles.size(), expected.size());
    for (size_t i = 0; i < tiles.size(); ++i) {
      const auto& t = tiles[i];
      EXPECT_EQ((std::vector<int64_t>{t.x0, t.y0, t.x1, t.y1}), expected[i].at("box").get<std::vector<int64_t>>()) << i;
      EXPECT_EQ((std::vector<int64_t>{t.padded_x0, t.padded_y0, t.padded_x1, t.padded_y1}),
                expected[i].at("padded").get<std::vector<int64_t>>())
          << i;
    }
  }
}

// Tiling changes the output only near the seams, by about what the manifest measured for Real-ESRGAN.
TEST(UpscaleTiles, TiledAgainstUntiled) {
  for (const auto& tiled : upscale_manifest().at("tiled")) {
    const std::string file = tiled.at("weights") == "rrdb_x4" ? "models/rrdbnet_x4.safetensors" : "models/rrdbnet_x2.safetensors";
    auto& upscaler = upscaler_for(file);
    const auto input = image::read_png(upscale_dir() / tiled.at("input").get<std::string>());
    UpscaleOptions options;
    const auto whole = upscaler.upscale(input.pixels, options);
    options.tile = tiled.at("tile");
    options.tile_pad = tiled.at("tile_pad");
    const auto in_tiles = upscaler.upscale(input.pixels, options);
    const double max_diff = (whole.net_out - in_tiles.net_out).abs().max().item<double>();
    const double reference_diff = tiled.at("max_abs_diff_net_out");
    EXPECT_GT(max_diff, 0.0) << file << ": tiles should differ at the seams";
    EXPECT_NEAR(max_diff, reference_diff, 0.1 * reference_diff + 1e-5) << file;
    const auto bytes = byte_difference(float_image_to_bytes(whole.image), float_image_to_bytes(in_tiles.image));
    EXPECT_LE(bytes.max, tiled.at("max_abs_diff_png").get<int>()) << file;
  }
}

TEST(UpscaleTiles, BadSettingsNameTheParameter) {
  auto& x4 = upscaler_for("models/rrdbnet_x4.safetensors");
  auto& x2 = upscaler_for("models/rrdbnet_x2.safetensors");
  const auto parameter_of = [](NeuralUpscaler& upscaler, int tile, int tile_pad) -> std::string {
    UpscaleOptions options;
    options.tile = tile;
    options.tile_pad = tile_pad;
    try {
      upscaler.validate(options);
    } catch (const InvalidParameter& e) {
      return e.parameter();
    }
    return "(accepted)";
  };
  EXPECT_EQ(parameter_of(x4, 8, 10), "tile");  // smaller than its overlap
  EXPECT_EQ(parameter_of(x4, -1, 10), "tile");
  EXPECT_EQ(parameter_of(x4, 32, -1), "tile_pad");
  EXPECT_EQ(parameter_of(x4, 33, 9), "(accepted)");
  EXPECT_EQ(parameter_of(x2, 33, 10), "tile");  // x2 unshuffles by 2
  EXPECT_EQ(parameter_of(x2, 32, 9), "tile_pad");
  EXPECT_EQ(parameter_of(x2, 32, 10), "(accepted)");
  EXPECT_EQ(parameter_of(x2, 0, 7), "(accepted)");  // no tiles: the overlap is unused
}

// A side too short to reflect (1 pixel, padded to 2 for the x2 net) repeats its edge instead.
TEST(UpscaleSizes, OnePixelHighImageThroughTheX2Net) {
  auto& x2 = upscaler_for("models/rrdbnet_x2.safetensors");
  const auto pixels = at::full({1, 5, 3}, 100, at::kByte);
  const auto out = x2.upscale_pixels(pixels, {});
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 10, 3}));
}

TEST(UpscaleSizes, EmptyAndHugeImagesAreRefused) {
  EXPECT_THROW(check_upscale_size(0, 10, 0, 40, "in.png"), Error);
  EXPECT_NO_THROW(check_upscale_size(512, 512, 2048, 2048, "in.png"));
  try {
    check_upscale_size(100000, 10, 400000, 40, "in.png");
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("in.png: 100000x10 upscaled is 400000x40"), std::string::npos) << e.what();
  }
  EXPECT_THROW(check_upscale_size(8192, 8192, 32768, 32768, "in.png"), Error);  // sides fit, area does not
}

// A float in [0, 1] whose float32 product with 255 is exactly `tie`, searched near tie / 255.
float value_with_product(float tie) {
  float v = tie / 255.0f;
  for (int step = 0; step < 64 && v * 255.0f != tie; ++step) v = std::nextafter(v, v * 255.0f < tie ? 2.0f : 0.0f);
  return v;
}

// numpy's round: half to even, on the float32 product (the manifest's png_round_ties runs hold such
// ties): 126.5 goes down to 126 and 127.5 up to 128, where rounding half away from zero gives 127 and 128.
TEST(UpscaleBytes, RoundHalfToEvenOnTheFloatProduct) {
  const float down = value_with_product(126.5f), up = value_with_product(127.5f);
  ASSERT_EQ(down * 255.0f, 126.5f);
  ASSERT_EQ(up * 255.0f, 127.5f);
  const auto image = at::tensor({0.0f, 1.0f, 1.2f, -0.3f, down, up}).reshape({1, 6, 1});
  const auto bytes = float_image_to_bytes(image);
  const std::vector<int> expected = {0, 255, 255, 0, 126, 128};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(bytes[0][i][0].item<int>(), expected[i]) << i;
}

}  // namespace
}  // namespace diffuse::pipeline
