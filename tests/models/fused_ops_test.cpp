// The fused GroupNorm(+SiLU), LayerNorm and GEGLU kernels compute what libtorch computes in fp32
// from the same inputs: within bf16's rounding for bf16 tensors, within fp32's for fp32 ones, for
// the UNet's and VAE's shapes and for sizes that leave partial vectors.
#include <gtest/gtest.h>

#include "models/fused_ops.h"
#include "models/layers.h"
#include "util/error.h"

namespace diffuse::models {
namespace {

// |a - b| within bf16's relative rounding (2^-8) of the reference's scale, everywhere.
void expect_close(const at::Tensor& fused, const at::Tensor& reference) {
  ASSERT_EQ(fused.sizes(), reference.sizes());
  ASSERT_EQ(fused.scalar_type(), at::kBFloat16);
  const auto error = (fused.to(at::kFloat) - reference).abs();
  const auto bound = reference.abs() * (1.0 / 128) + 1e-2;
  EXPECT_TRUE(error.le(bound).all().item<bool>()) << "largest error " << error.max().item<double>();
}

class FusedOps : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto probe = at::zeros({1}, at::kBFloat16);
    if (!use_fused_kernels(probe)) GTEST_SKIP() << "no AVX512_BF16 on this CPU (or DIFFUSE_FUSED=off)";
    torch::manual_seed(5);
  }
  torch::NoGradGuard no_grad;
};

TEST_F(FusedOps, GroupNormWithAndWithoutSilu) {
  struct Case {
    std::vector<int64_t> shape;
    int64_t groups;
  };
  // UNet level 1, the VAE's 3-channel-per-group layout, an odd plane (7x5), a 1-d input.
  for (const auto& c :
       {Case{{2, 320, 16, 16}, 32}, Case{{1, 96, 9, 9}, 32}, Case{{2, 6, 7, 5}, 3}, Case{{3, 8, 21}, 2}}) {
    SCOPED_TRACE(c10::str(c.shape));
    const int64_t channels = c.shape[1];
    const auto x = (at::randn(c.shape) * 3 + 1).to(at::kBFloat16);
    const auto weight = at::randn({channels}).to(at::kBFloat16), bias = at::randn({channels}).to(at::kBFloat16);
    const auto reference =
        at::group_norm(x.to(at::kFloat), c.groups, weight.to(at::kFloat), bias.to(at::kFloat), 1e-5);
    expect_close(fused_group_norm(x, c.groups, weight, bias, 1e-5, false), reference);
    expect_close(fused_group_norm(x, c.groups, weight, bias, 1e-5, true), at::silu(reference));
  }
}

TEST_F(FusedOps, LayerNormOverTheLastDimension) {
  for (const int64_t width : {320, 1280, 37}) {
    SCOPED_TRACE(width);
    const auto x = (at::randn({2, 33, width}) * 2 - 0.5).to(at::kBFloat16);
    const auto weight = at::randn({width}).to(at::kBFloat16), bias = at::randn({width}).to(at::kBFloat16);
    const auto reference = at::layer_norm(x.to(at::kFloat), {width}, weight.to(at::kFloat), bias.to(at::kFloat), 1e-5);
    expect_close(fused_layer_norm(x, weight, bias, 1e-5), reference);
  }
}

TEST_F(FusedOps, GegluGatesTheFirstHalfWithTheGeluOfTheSecond) {
  for (const int64_t half : {1280, 40, 9}) {
    SCOPED_TRACE(half);
    const auto x = (at::randn({2, 17, 2 * half}) * 3).to(at::kBFloat16);
    const auto parts = x.to(at::kFloat).chunk(2, -1);
    expect_close(fused_geglu(x), parts[0] * at::gelu(parts[1]));
  }
}

// fp32 results within a few fp32 roundings of libtorch's (the exponentials and erf are polynomials).
void expect_close_fp32(const at::Tensor& fused, const at::Tensor& reference) {
  ASSERT_EQ(fused.sizes(), reference.sizes());
  ASSERT_EQ(fused.scalar_type(), at::kFloat);
  const auto error = (fused - reference).abs();
  EXPECT_TRUE(error.le(reference.abs() * 1e-5 + 1e-5).all().item<bool>()) << "largest error " << error.max().item<double>();
}

TEST_F(FusedOps, Fp32KernelsMatchLibtorchToFp32Rounding) {
  if (!use_fused_kernels(at::zeros({1}))) GTEST_SKIP() << "no AVX-512 on this CPU";
  const auto image = at::randn({2, 96, 9, 7}) * 3 + 1;
  const auto weight = at::randn({96}), bias = at::randn({96});
  const auto reference = at::group_norm(image, 32, weight, bias, 1e-6);
  expect_close_fp32(fused_group_norm(image, 32, weight, bias, 1e-6, false), reference);
  expect_close_fp32(fused_group_norm(image, 32, weight, bias, 1e-6, true), at::silu(reference));
  const auto tokens = at::randn({2, 33, 37}) * 2 - 0.5;
  const auto w = at::randn({37}), b = at::randn({37});
  expect_close_fp32(fused_layer_norm(tokens, w, b, 1e-5), at::layer_norm(tokens, {37}, w, b, 1e-5));
  const auto projected = at::randn({2, 17, 2 * 45}) * 3;
  const auto parts = projected.chunk(2, -1);
  expect_close_fp32(fused_geglu(projected), parts[0] * at::gelu(parts[1]));
}

TEST_F(FusedOps, NormModulesTakeTheKernelsOnlyForInference) {
  auto norm = group_norm(4, 8, 1e-6);
  const auto x = at::randn({1, 8, 5, 5});
  {
    torch::AutoGradMode recording(true);
    const auto tracked = x.clone().requires_grad_(true);
    EXPECT_TRUE(at::equal(normalize(norm, tracked), norm(tracked)));  // training: libtorch's own
  }
  norm->to(at::kBFloat16);
  const auto xb = x.to(at::kBFloat16);
  expect_close(normalize_silu(norm, xb), at::silu(norm(x.to(at::kBFloat16)).to(at::kFloat)));
}

TEST_F(FusedOps, NamesWhatTheyCannotTake) {
  try {
    fused_group_norm(at::zeros({1, 6, 2, 2}, at::kBFloat16), 4, {}, {}, 1e-5, false);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("4 groups"), std::string::npos) << e.what();
  }
  try {
    fused_layer_norm(at::zeros({2, 3}, at::kDouble), {}, {}, 1e-5);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("takes bf16 or fp32 CPU tensors, got Double"), std::string::npos)
        << e.what();
  }
  try {
    fused_geglu(at::zeros({2, 3}, at::kBFloat16));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not even"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace diffuse::models
