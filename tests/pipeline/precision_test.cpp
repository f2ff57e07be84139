// bf16 inference (packed convolutions, fused attention where the CPU has AVX512_BF16) draws the same
// picture as fp32 from the same seed on both fixture models: the bar is 30 dB PSNR.
#include <gtest/gtest.h>

#include <cmath>

#include "models/kernel_options.h"
#include "pipeline/generation.h"
#include "support/fixtures.h"
#include "util/error.h"

namespace diffuse::pipeline {
namespace {

double psnr_8bit(const at::Tensor& a, const at::Tensor& b) {
  const double mse = (a.to(at::kDouble) - b.to(at::kDouble)).pow(2).mean().item<double>();
  return 10.0 * std::log10(255.0 * 255.0 / std::max(mse, 1e-12));
}

class Bf16Generation : public ::testing::TestWithParam<std::string> {};

TEST_P(Bf16Generation, DrawsTheFp32ImageFromTheSameSeed) {
  if (!models::bf16_supported()) GTEST_SKIP() << "bf16 is refused below CPU class avx512 (Bf16Refusal)";
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

// Below AVX-512, libtorch has no bf16 kernels worth the name: asked for bf16 there, loading says so by
// name instead of running slower than fp32; the default is fp32 there.
TEST(Bf16Refusal, BelowAvx512Bf16IsNamedAndTheDefaultIsFp32) {
  const auto saved = models::kernel_options();
  if (saved.cpu < models::CpuClass::Avx2) GTEST_SKIP() << "needs CPU class avx2 to lower it to";
  auto lowered = saved;
  lowered.cpu = models::CpuClass::Avx2;
  models::set_kernel_options(lowered);
  LoadOptions load;
  load.dtype = at::kBFloat16;
  std::string message;
  try {
    StableDiffusionModel::load(test::fixtures_dir() / "tiny-sd1/diffusers", load);
  } catch (const InvalidParameter& e) {
    message = e.what();
  }
  const auto dtype = default_dtype();
  models::set_kernel_options(saved);
  EXPECT_EQ(message, "precision: bf16 needs a CPU with AVX-512 (this one's class is avx2): use fp32");
  EXPECT_EQ(dtype, at::kFloat);
}

}  // namespace
}  // namespace diffuse::pipeline
