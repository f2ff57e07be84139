// The pixel edits before img2img and inpainting: exact values of small hand-made images.
#include <gtest/gtest.h>

#include "image/image_edit.h"
#include "util/error.h"

namespace diffuse::image {
namespace {

at::Tensor bytes(std::vector<int> values, std::vector<int64_t> shape) {
  return at::tensor(values, at::kInt).to(at::kByte).view(shape);
}

TEST(ImageEdit, GreyBecomesRgbAndAlphaIsDropped) {
  const auto grey = bytes({10, 200}, {1, 2, 1});
  EXPECT_TRUE(to_rgb(grey).equal(bytes({10, 10, 10, 200, 200, 200}, {1, 2, 3})));
  const auto rgba = bytes({1, 2, 3, 0, 4, 5, 6, 255}, {1, 2, 4});
  EXPECT_TRUE(to_rgb(rgba).equal(bytes({1, 2, 3, 4, 5, 6}, {1, 2, 3})));
}

TEST(ImageEdit, GreyIsPilsLuma) {
  // PIL: Image.new("RGB", (1, 1), c).convert("L") gives 76 for red, 150 for green, 29 for blue.
  const auto rgb = bytes({255, 0, 0, 0, 255, 0, 0, 0, 255, 128, 128, 128}, {1, 4, 3});
  EXPECT_TRUE(to_grey(rgb).equal(bytes({76, 150, 29, 128}, {1, 4})));
}

TEST(ImageEdit, ResizeKeepsFlatColoursAndTheSameSizeIsTheIdentity) {
  const auto flat = at::full({6, 10, 3}, 77, at::kByte);
  const auto smaller = resize(flat, 4, 3);
  EXPECT_EQ(smaller.sizes(), (std::vector<int64_t>{3, 4, 3}));
  EXPECT_TRUE(smaller.equal(at::full({3, 4, 3}, 77, at::kByte)));
  const auto larger = resize(flat, 20, 12);
  EXPECT_TRUE(larger.equal(at::full({12, 20, 3}, 77, at::kByte)));
  EXPECT_TRUE(resize(flat, 10, 6).equal(flat));
}

TEST(ImageEdit, EdgePaddingRepeatsTheBorder) {
  const auto pixels = bytes({1, 2, 3, 4}, {2, 2, 1});
  const auto padded = pad_edge(pixels, Padding{1, 0, 0, 1});
  EXPECT_TRUE(padded.equal(bytes({1, 1, 2, 3, 3, 4, 3, 3, 4}, {3, 3, 1})));
  const auto constant = pad_constant(pixels, Padding{0, 1, 1, 0}, 9);
  EXPECT_TRUE(constant.equal(bytes({9, 9, 9, 1, 2, 9, 3, 4, 9}, {3, 3, 1})));
}

TEST(ImageEdit, MaskBlurSoftensOnlyTheEdge) {
  at::Tensor mask = at::zeros({32, 32});
  mask.narrow(1, 16, 16).fill_(1);
  const auto blurred = blur_mask(mask, 4);
  EXPECT_FLOAT_EQ(blurred[5][0].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(blurred[5][31].item<float>(), 1.0f);  // the border repeats outward
  EXPECT_NEAR(blurred[5][15].item<float>() + blurred[5][16].item<float>(), 1.0f, 1e-5);
  EXPECT_GT(blurred[5][14].item<float>(), 0.05f);
  EXPECT_LT(blurred[5][14].item<float>(), 0.5f);
  EXPECT_TRUE(blur_mask(mask, 0).equal(mask));
}

TEST(ImageEdit, RefusesWhatIsNotPixels) {
  EXPECT_THROW(to_rgb(at::zeros({2, 2, 3})), Error);           // float, not uint8
  EXPECT_THROW(to_grey(at::zeros({2, 2, 5}, at::kByte)), Error);  // 5 channels
}

}  // namespace
}  // namespace diffuse::image
