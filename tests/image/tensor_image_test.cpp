#include "image/tensor_image.h"

#include <gtest/gtest.h>

#include <cmath>

#include "util/error.h"

namespace diffuse::image {
namespace {

TEST(TensorImage, MapsMinusOneToOneOntoBytesLikeDiffusers) {
  // x = 0 gives 0.5 * 255 = 127.5, which numpy rounds to even: 128.
  const auto decoded = at::tensor({-3.0f, -1.0f, 0.0f, -0.5f, 0.5f, 1.0f, 2.0f}).reshape({1, 1, 1, 7});
  const auto image = to_uint8_image(decoded);
  EXPECT_EQ(image.scalar_type(), at::kByte);
  EXPECT_EQ(image.sizes(), (std::vector<int64_t>{1, 1, 7, 1}));
  EXPECT_TRUE(at::equal(image.flatten(), at::tensor({0, 0, 128, 64, 191, 255, 255}, at::kByte)));
}

TEST(TensorImage, MatchesFloat32HalfToEvenRoundingAndLayout) {
  at::manual_seed(0);
  const auto decoded = at::rand({2, 3, 5, 4}) * 2.4 - 1.2;
  const auto image = to_uint8_image(decoded);
  ASSERT_EQ(image.sizes(), (std::vector<int64_t>{2, 5, 4, 3}));
  const auto source = decoded.contiguous();
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t c = 0; c < 3; ++c) {
      for (int64_t y = 0; y < 5; ++y) {
        for (int64_t x = 0; x < 4; ++x) {
          float unit = source[b][c][y][x].item<float>() / 2.0f + 0.5f;
          unit = std::min(1.0f, std::max(0.0f, unit));
          const float expected = std::nearbyint(unit * 255.0f);  // default mode: half to even
          EXPECT_EQ(image[b][y][x][c].item<uint8_t>(), static_cast<uint8_t>(expected));
        }
      }
    }
  }
}

TEST(TensorImage, AcceptsHalfPrecision) {
  const auto decoded = at::tensor({-1.0f, 0.0f, 1.0f}).reshape({1, 3, 1, 1}).to(at::kHalf);
  EXPECT_TRUE(at::equal(to_uint8_image(decoded).flatten(), at::tensor({0, 128, 255}, at::kByte)));
}

TEST(TensorImage, NanBecomesBlack) {
  const auto decoded = at::tensor({std::nanf(""), 1.0f}).reshape({1, 1, 1, 2});
  EXPECT_TRUE(at::equal(to_uint8_image(decoded).flatten(), at::tensor({0, 255}, at::kByte)));
}

TEST(TensorImage, RejectsWrongShapesAndTypes) {
  EXPECT_THROW(to_uint8_image(at::zeros({3, 8, 8})), Error);
  EXPECT_THROW(to_uint8_image(at::zeros({1, 3, 8, 8}, at::kByte)), Error);
}

}  // namespace
}  // namespace diffuse::image
