// The FLOP counter against the published work of SD 1.5 (issue #3's table): if the count drifts,
// every GFLOP/s figure the benchmark prints is wrong.
#include "flop_count.h"

#include <gtest/gtest.h>

namespace diffuse::bench {
namespace {

// Within 0.5%: the published figures are rounded to three or four digits.
void expect_gflop(double flops, double expected_gflop) {
  EXPECT_NEAR(flops / 1e9, expected_gflop, expected_gflop * 0.005);
}

TEST(FlopCount, Sd15CfgStepAt256) { expect_gflop(unet_flops(models::UNetConfig{}, 2, 32, 32).total(), 360); }

TEST(FlopCount, Sd15CfgStepAt512) { expect_gflop(unet_flops(models::UNetConfig{}, 2, 64, 64).total(), 1606); }

TEST(FlopCount, Sd15VaeDecodeAt512) { expect_gflop(vae_decode_flops(models::VaeConfig{}, 1, 64, 64).total(), 2515); }

// RealESRGAN_x4plus from its published size: 16,697,987 parameters, of which 13,571 biases; every 3x3
// weight runs once per output pixel of its layer: all at 256x256 but conv_up1 (64x64x9 at 512x512),
// conv_up2 and conv_hr (at 1024x1024) and conv_last (64x3x9 at 1024x1024).
TEST(FlopCount, RealEsrganX4plusAt256) {
  const double weights = 16697987 - 13571, up = 64 * 64 * 9, last = 64 * 3 * 9;
  const double expected = 2 * ((weights - 3 * up - last) * 256 * 256 + up * 512 * 512 + (2 * up + last) * 1024 * 1024);
  EXPECT_DOUBLE_EQ(rrdbnet_flops(models::RrdbNetConfig{}, 1, 256, 256).total(), expected);
}

TEST(FlopCount, AttentionProductsGrowWithTokensSquared) {
  const models::UNetConfig config;
  const auto small = unet_flops(config, 2, 32, 32), large = unet_flops(config, 2, 64, 64);
  // Self-attention at the top level dominates: 4x the tokens gives about 16x the products.
  EXPECT_GT(large.attention / small.attention, 10.0);
  EXPECT_NEAR(large.convolution / small.convolution, 4.0, 0.01);
}

TEST(FlopCount, BatchScalesLinearly) {
  const models::VaeConfig config;
  EXPECT_DOUBLE_EQ(vae_decode_flops(config, 2, 16, 16).total(), 2 * vae_decode_flops(config, 1, 16, 16).total());
}

}  // namespace
}  // namespace diffuse::bench
