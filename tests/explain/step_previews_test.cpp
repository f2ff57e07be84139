#include <gtest/gtest.h>

#include "explain/step_previews.h"
#include "util/error.h"

namespace diffuse::explain {
namespace {

TEST(LatentPreview, AppliesTheSd1Factors) {
  auto latents = at::zeros({1, 4, 2, 3});
  latents[0][0][1][2] = 1.0;   // channel 0 only: rgb = (1 + factors[0]) / 2
  latents[0][3][0][0] = -1.0;  // minus channel 3: rgb = (1 - factors[3]) / 2
  const auto rgb = latents_to_rgb_linear(latents);
  ASSERT_EQ(rgb.sizes(), (at::IntArrayRef{2, 3, 3}));
  EXPECT_EQ(rgb[0][1][0].item<uint8_t>(), 128);  // 0 -> 127.5, rounded half to even
  EXPECT_EQ(rgb[1][2][0].item<uint8_t>(), 172);  // (1 + 0.3512) / 2 * 255 = 172.28
  EXPECT_EQ(rgb[1][2][1].item<uint8_t>(), 157);  // (1 + 0.2297) / 2 * 255 = 156.79
  EXPECT_EQ(rgb[0][0][2].item<uint8_t>(), 219);  // (1 + 0.7177) / 2 * 255 = 219.01
}

TEST(LatentPreview, ClampsAndRejectsOtherChannelCounts) {
  const auto bright = latents_to_rgb_linear(at::full({1, 4, 1, 1}, 100.0));
  EXPECT_EQ(bright[0][0][1].item<uint8_t>(), 255);  // green sums to +0.65 per unit: clamps high
  EXPECT_THROW(latents_to_rgb_linear(at::zeros({1, 16, 2, 2})), Error);
  EXPECT_EQ(parse_preview("vae").mode, PreviewMode::Vae);
  EXPECT_EQ(parse_preview("taesd").mode, PreviewMode::Taesd);
  EXPECT_FALSE(parse_preview("taesd").taesd.has_value());
  const auto with_path = parse_preview("taesd:/models/taesd_decoder.safetensors");
  EXPECT_EQ(with_path.mode, PreviewMode::Taesd);
  EXPECT_EQ(with_path.taesd.value(), "/models/taesd_decoder.safetensors");
  try {
    parse_preview("fast");
    FAIL() << "expected an error";
  } catch (const InvalidParameter& e) {
    EXPECT_STREQ(e.what(), "preview: 'fast' is not one of linear, vae, taesd, taesd:PATH");
  }
}

}  // namespace
}  // namespace diffuse::explain
