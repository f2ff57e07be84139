// bf16 inference (packed convolutions, fused attention where the CPU has AVX512_BF16) draws the same
// picture as fp32 from the same seed on both fixture models: the bar is 30 dB PSNR.
#include <gtest/gtest.h>

#include <cmath>

#include "pipeline/generation.h"
#include "support/fixtures.h"

namespace diffuse::pipeline {
namespace {

double psnr_8bit(const at::Tensor& a, const at::Tensor& b) {
  const double mse = (a.to(at::kDouble) - b.to(at::kDouble)).pow(2).mean().item<double>();
  return 10.0 * std::log10(255.0 * 255.0 / std::max(mse, 1e-12));
}

class Bf16Generation : public ::testing::TestWithParam<std::string> {};

TEST_P(Bf16Generation, DrawsTheFp32ImageFromTheSameSeed) {
  std::map<at::ScalarType, at::Tensor> images;
  for (const auto dtype : {at::kFloat, at::kBFloat16}) {
    LoadOptions load;
    load.dtype = dtype;
    auto model = StableDiffusionModel::load(test::fixtures_dir() / GetParam() / "diffusers", load);
    GenerationRequest request;
    request.prompt = "a photo of a cat";
    request.negative_prompt = "blurry";
    request.seed = 42;
    request.steps = 8;
    images[dtype] = generate_image(model, resolve(request, model)).pixels;
  }
  ASSERT_EQ(images[at::kBFloat16].sizes(), images[at::kFloat].sizes());
  const double db = psnr_8bit(images[at::kFloat], images[at::kBFloat16]);
  EXPECT_GT(db, 30.0);
  EXPECT_FALSE(at::equal(images[at::kFloat], images[at::kBFloat16]));  // two precisions really ran
  std::printf("%s: bf16 vs fp32 PSNR %.1f dB\n", GetParam().c_str(), db);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Bf16Generation, ::testing::Values("tiny-sd1", "tiny-sd2v", "tiny-sdxl"));

}  // namespace
}  // namespace diffuse::pipeline
