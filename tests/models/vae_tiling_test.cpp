// Tiled VAE decode (models/vae.h): tiles of the training size (at most 512 pixels), a quarter
// overlap, blended edges; the first tile's unblended corner is exactly that tile's own decode.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "io/model_files.h"
#include "models/vae.h"
#include "models/weights.h"
#include "support/fixtures.h"

namespace diffuse::models {
namespace {

AutoencoderKL tiny_vae() {
  const auto files = io::load_model_files(test::fixtures_dir() / "tiny-sd1" / "diffusers");
  AutoencoderKL vae(VaeConfig::from_json(files.vae.config));
  load_weights(*vae, files.vae.tensors, {files.vae.source, {}, {}});
  vae->eval();
  return vae;
}

TEST(VaeTiling, TilesOfTheTrainingSizeWithAQuarterOverlap) {
  auto vae = tiny_vae();
  ASSERT_EQ(vae->config.sample_size, 32);  // 16 latents a tile at downscale 2; stride 12
  EXPECT_EQ(vae->tile_latents(), 16);
  EXPECT_EQ(vae->tile_count(16, 16), 1);
  EXPECT_EQ(vae->tile_count(32, 32), 9);
  EXPECT_EQ(vae->tile_count(24, 40), 8);

  VaeConfig sdxl;  // full-size SDXL VAE: trained at 1024, tiled at 512 (64 latents)
  sdxl.sample_size = 1024;
  EXPECT_EQ(std::min<int64_t>(sdxl.sample_size, AutoencoderKLImpl::kMaxTilePixels) / sdxl.downscale_factor(), 64);
}

TEST(VaeTiling, ReportsEveryTileAndKeepsTheFirstTilesCornerExact) {
  torch::NoGradGuard no_grad;
  auto vae = tiny_vae();
  auto generator = at::make_generator<at::CPUGeneratorImpl>(3);
  const auto z = at::randn({1, 4, 32, 32}, generator);
  std::vector<std::pair<int, int>> reports;
  const auto tiled = vae->decode_tiled(z, [&](int done, int total) { reports.emplace_back(done, total); });
  ASSERT_EQ(reports.size(), 9u);
  EXPECT_EQ(reports.front(), (std::pair<int, int>{1, 9}));
  EXPECT_EQ(reports.back(), (std::pair<int, int>{9, 9}));
  EXPECT_EQ(tiled.sizes(), (std::vector<int64_t>{1, 3, 64, 64}));
  // Each tile contributes its first 24 pixels; the first tile's are blended with nothing.
  const auto first_tile = vae->decode(z.slice(2, 0, 16).slice(3, 0, 16));
  EXPECT_TRUE(at::allclose(tiled.slice(2, 0, 24).slice(3, 0, 24), first_tile.slice(2, 0, 24).slice(3, 0, 24)));
  // Elsewhere each tile sees less of the latent than the whole decode does (the mid block attends
  // over all of it), so values differ; the picture is still the same one: strongly correlated.
  const auto whole = vae->decode(z);
  const auto a = tiled.flatten() - tiled.mean(), b = whole.flatten() - whole.mean();
  const double correlation = (a * b).sum().item<double>() / (a.norm() * b.norm()).item<double>();
  EXPECT_GT(correlation, 0.9) << correlation;
}

}  // namespace
}  // namespace diffuse::models
