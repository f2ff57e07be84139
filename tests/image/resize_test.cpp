// Pillow-exact resizing: Lanczos against PIL's own output recorded by the hires fixture (AUTOMATIC1111's
// Lanczos upscaler on a decoded first pass), and the properties Pillow's arithmetic guarantees.
#include "image/resize.h"

#include <gtest/gtest.h>

#include "image/png_file.h"
#include "support/fixtures.h"
#include "util/error.h"

namespace diffuse::image {
namespace {

at::Tensor resize_pattern_image(int64_t height, int64_t width, int64_t channels) {
  return at::arange(height * width * channels, at::kInt).mul(37).remainder(256).to(at::kByte).view({height, width, channels});
}

TEST(ResizeLikePillow, LanczosMatchesPilOnTheHiresFixture) {
  const auto manifest = test::read_json(test::fixtures_dir() / "hires/manifest.json");
  const auto refs = test::fixtures_dir() / "hires/refs";
  int checked = 0;
  for (const auto& run : manifest.at("runs")) {
    if (!run.contains("upscale") || run.at("upscale").at("upscaler") != "lanczos") continue;
    const auto& upscale = run.at("upscale");
    const auto lowres = read_png(refs / upscale.at("lowres_uint8_png").get<std::string>());
    const auto expected = read_png(refs / upscale.at("upscaled_png").get<std::string>());
    const auto resized = resize_like_pillow(lowres.pixels, upscale.at("target_width"), upscale.at("target_height"),
                                            ResampleFilter::Lanczos);
    ASSERT_EQ(resized.sizes(), expected.pixels.sizes());
    EXPECT_TRUE(at::equal(resized, expected.pixels))
        << (resized.to(at::kInt) - expected.pixels.to(at::kInt)).abs().max().item<int>() << " levels off";
    ++checked;
  }
  EXPECT_GE(checked, 1);
}

TEST(ResizeLikePillow, SameSizeIsACopy) {
  const auto pixels = resize_pattern_image(7, 5, 3);
  for (auto filter : {ResampleFilter::Lanczos, ResampleFilter::Nearest}) {
    const auto out = resize_like_pillow(pixels, 5, 7, filter);
    EXPECT_TRUE(at::equal(out, pixels));
    EXPECT_NE(out.data_ptr(), pixels.data_ptr());
  }
}

// The fixed-point weights of each output pixel sum to 1 within rounding, so a flat image stays flat at
// every size, up or down, in one pass or two.
TEST(ResizeLikePillow, LanczosKeepsFlatImagesFlat) {
  for (int value : {0, 1, 128, 254, 255}) {
    const auto flat = at::full({9, 13, 3}, value, at::kByte);
    for (auto [w, h] : std::vector<std::pair<int, int>>{{26, 18}, {5, 4}, {13, 30}, {40, 9}, {1, 1}}) {
      const auto out = resize_like_pillow(flat, w, h, ResampleFilter::Lanczos);
      EXPECT_TRUE(at::equal(out, at::full({h, w, 3}, value, at::kByte))) << value << " at " << w << "x" << h;
    }
  }
}

// Lanczos overshoots at a hard edge (its lobes are negative) and Pillow clips to [0, 255].
TEST(ResizeLikePillow, LanczosRingsAndClipsAtAnEdge) {
  auto step = at::zeros({1, 8, 1}, at::kByte);
  step.slice(1, 4, 8).fill_(200);
  const auto out = resize_like_pillow(step, 32, 1, ResampleFilter::Lanczos).to(at::kInt);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{1, 32, 1}));
  EXPECT_GT(out.max().item<int>(), 200);  // overshoot past the bright side
  EXPECT_EQ(out.min().item<int>(), 0);    // undershoot clipped
  EXPECT_EQ(out[0][0][0].item<int>(), 0);
  EXPECT_EQ(out[0][31][0].item<int>(), 200);
}

// Pillow resizes RGBA premultiplied: the colour of a fully transparent pixel never bleeds into its
// opaque neighbours.
TEST(ResizeLikePillow, TransparentColourDoesNotBleed) {
  auto rgba = at::zeros({4, 4, 4}, at::kByte);
  rgba.select(2, 3).fill_(255);
  rgba[1][1] = at::tensor({255, 255, 255, 0}, at::kByte);  // white, invisible
  const auto out = resize_like_pillow(rgba, 8, 8, ResampleFilter::Lanczos);
  const auto colour = out.slice(2, 0, 3), alpha = out.select(2, 3);
  EXPECT_EQ(colour.max().item<int>(), 0) << "the transparent white leaked";
  EXPECT_LT(alpha.min().item<int>(), 255);
}

TEST(ResizeLikePillow, NearestPicksPillowsSourcePixels) {
  const auto pixels = resize_pattern_image(3, 4, 2);
  const auto up = resize_like_pillow(pixels, 8, 6, ResampleFilter::Nearest);
  for (int y = 0; y < 6; ++y) {
    for (int x = 0; x < 8; ++x) EXPECT_TRUE(at::equal(up[y][x], pixels[y / 2][x / 2])) << x << "," << y;
  }
  // Shrinking by 2 samples the second pixel of each pair (centre 0.5 * 2 = 1.0), 3 -> 2 samples 0 and 2
  // (centres 0.75 and 2.25).
  const auto wide = resize_pattern_image(1, 6, 1);
  const auto half = resize_like_pillow(wide, 3, 1, ResampleFilter::Nearest);
  for (int x = 0; x < 3; ++x) EXPECT_EQ(half[0][x][0].item<int>(), wide[0][2 * x + 1][0].item<int>());
  const auto third = resize_like_pillow(resize_pattern_image(1, 3, 1), 2, 1, ResampleFilter::Nearest);
  EXPECT_EQ(third[0][0][0].item<int>(), resize_pattern_image(1, 3, 1)[0][0][0].item<int>());
  EXPECT_EQ(third[0][1][0].item<int>(), resize_pattern_image(1, 3, 1)[0][2][0].item<int>());
}

TEST(ResizeLikePillow, FilterNamesAndBadInput) {
  EXPECT_EQ(resample_filter_named("Lanczos"), ResampleFilter::Lanczos);
  EXPECT_EQ(resample_filter_named("nearest"), ResampleFilter::Nearest);
  EXPECT_EQ(resample_filter_named("bicubic"), std::nullopt);
  EXPECT_THROW(resize_like_pillow(resize_pattern_image(2, 2, 3), 0, 4, ResampleFilter::Lanczos), Error);
  EXPECT_THROW(resize_like_pillow(at::zeros({2, 2, 3}, at::kFloat), 4, 4, ResampleFilter::Lanczos), Error);
}

}  // namespace
}  // namespace diffuse::image
