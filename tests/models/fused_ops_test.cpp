// The fused GroupNorm(+SiLU), LayerNorm and GEGLU kernels compute what libtorch computes in fp32
// from the same inputs: within bf16's rounding for bf16 tensors, within fp32's for fp32 ones, for
// the UNet's and VAE's shapes and for sizes that leave partial vectors of 8 and of 16 lanes. They
// test the kernels of this run's CPU class (DIFFUSE_CPU=avx2 takes the AVX2 ones on an AVX-512
// machine); one test compares the AVX2 and AVX-512 kernels where the CPU has both.
#include <gtest/gtest.h>

#include <functional>
#include <optional>

#include "models/fused_ops.h"
#include "models/kernel_options.h"
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
    if (!use_fused_kernels(probe))
      GTEST_SKIP() << "the fused kernels need CPU class avx2 or above; this run's is "
                   << cpu_class_name(kernel_options().cpu)
                   << (kernel_options().fused_norms ? "" : " (and DIFFUSE_FUSED=off)");
    torch::manual_seed(5);
  }
  torch::NoGradGuard no_grad;
};

TEST_F(FusedOps, GroupNormWithAndWithoutSilu) {
  struct Case {
    std::vector<int64_t> shape;
    int64_t groups;
  };
  // UNet level 1, the VAE's 3-channel-per-group layout, an odd plane (7x5), a 1-d input, planes
  // shorter than one vector of either width and one a single lane past 8.
  for (const auto& c : {Case{{2, 320, 16, 16}, 32}, Case{{1, 96, 9, 9}, 32}, Case{{2, 6, 7, 5}, 3},
                        Case{{3, 8, 21}, 2}, Case{{2, 4, 5}, 2}, Case{{1, 6, 3, 3}, 3}}) {
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
  for (const int64_t width : {320, 1280, 37, 5, 8, 15, 17}) {
    SCOPED_TRACE(width);
    const auto x = (at::randn({2, 33, width}) * 2 - 0.5).to(at::kBFloat16);
    const auto weight = at::randn({width}).to(at::kBFloat16), bias = at::randn({width}).to(at::kBFloat16);
    const auto reference = at::layer_norm(x.to(at::kFloat), {width}, weight.to(at::kFloat), bias.to(at::kFloat), 1e-5);
    expect_close(fused_layer_norm(x, weight, bias, 1e-5), reference);
  }
}

TEST_F(FusedOps, GegluGatesTheFirstHalfWithTheGeluOfTheSecond) {
  for (const int64_t half : {1280, 40, 9, 3, 8, 23}) {
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
  const auto short_rows = at::randn({3, 2 * 5}) * 3;  // under one vector of either width
  const auto short_parts = short_rows.chunk(2, -1);
  expect_close_fp32(fused_geglu(short_rows), short_parts[0] * at::gelu(short_parts[1]));
}

// Both storages compute in fp32 alike, so a bf16 result is the fp32 result of the same (widened)
// input rounded once, to nearest even exactly as torch rounds; NaN stays NaN and infinity infinity.
// Sets the CPU class the kernels see for the guard's lifetime.
class CpuClassGuard {
 public:
  explicit CpuClassGuard(CpuClass cpu) : saved_(kernel_options()) {
    auto options = saved_;
    options.cpu = cpu;
    set_kernel_options(options);
  }
  ~CpuClassGuard() { set_kernel_options(saved_); }

 private:
  KernelOptions saved_;
};

TEST_F(FusedOps, Bf16ResultsAreTheFp32ResultsRoundedOnce) {
  // Class avx512 runs bf16 on the AVX2 kernels (no vcvtneps2bf16) and fp32 on the AVX-512 ones, whose
  // sums run in another order: compare one instruction set with itself.
  std::optional<CpuClassGuard> same_kernels;
  if (kernel_options().cpu == CpuClass::Avx512) same_kernels.emplace(CpuClass::Avx2);
  const auto expect_rounded = [](const at::Tensor& bf16, const at::Tensor& fp32) {
    ASSERT_EQ(bf16.scalar_type(), at::kBFloat16);
    const auto expected = fp32.to(at::kBFloat16);
    EXPECT_TRUE(at::equal(bf16.isnan(), expected.isnan()));
    const auto numbers = expected.isnan().logical_not();
    EXPECT_TRUE(at::equal(bf16.masked_select(numbers), expected.masked_select(numbers)))
        << "largest difference "
        << (bf16.to(at::kFloat) - expected.to(at::kFloat)).masked_select(numbers).abs().max().item<double>();
  };
  auto projected = (at::randn({3, 2 * 37}) * 3).to(at::kBFloat16);
  projected[0][1] = NAN;
  projected[1][40] = NAN;  // in the gate
  projected[2][2] = INFINITY;
  expect_rounded(fused_geglu(projected), fused_geglu(projected.to(at::kFloat)));
  const auto image = (at::randn({2, 12, 5, 7}) * 3 + 1).to(at::kBFloat16);
  const auto weight = at::randn({12}), bias = at::randn({12});
  expect_rounded(fused_group_norm(image, 4, weight, bias, 1e-5, true),
                 fused_group_norm(image.to(at::kFloat), 4, weight, bias, 1e-5, true));
  const auto tokens = (at::randn({4, 43}) * 2).to(at::kBFloat16);
  const auto w = at::randn({43}), b = at::randn({43});
  expect_rounded(fused_layer_norm(tokens, w, b, 1e-5), fused_layer_norm(tokens.to(at::kFloat), w, b, 1e-5));
}

// The AVX2 kernels compute what the AVX-512 ones do, but for the order of the moments' sums (8 lanes
// against 16): fp32 results agree to fp32 rounding, bf16 ones to one bf16 rounding.
TEST_F(FusedOps, Avx2KernelsMatchTheAvx512Ones) {
  if (kernel_options().cpu < CpuClass::Avx512Bf16)
    GTEST_SKIP() << "comparing needs CPU class avx512_bf16; this run's is " << cpu_class_name(kernel_options().cpu);
  const auto on = [](CpuClass cpu, const std::function<at::Tensor()>& op) {
    const CpuClassGuard guard(cpu);
    return op();
  };
  const auto expect_agree = [&](const std::function<at::Tensor()>& op) {
    const auto avx2_result = on(CpuClass::Avx2, op);
    const bool bf16 = avx2_result.scalar_type() == at::kBFloat16;
    const auto avx2 = avx2_result.to(at::kFloat), avx512 = on(CpuClass::Avx512Bf16, op).to(at::kFloat);
    const auto bound = at::maximum(avx2.abs(), avx512.abs()) * (bf16 ? 1.0 / 128 : 1e-5) + (bf16 ? 1e-6 : 1e-5);
    const auto error = (avx2 - avx512).abs();
    EXPECT_TRUE(error.le(bound).all().item<bool>()) << "largest difference " << error.max().item<double>();
  };
  for (const auto dtype : {at::kBFloat16, at::kFloat}) {
    SCOPED_TRACE(c10::toString(dtype));
    const auto image = (at::randn({2, 64, 9, 7}) * 3 + 1).to(dtype);
    const auto weight = at::randn({64}), bias = at::randn({64});
    expect_agree([&] { return fused_group_norm(image, 32, weight, bias, 1e-5, false); });
    expect_agree([&] { return fused_group_norm(image, 32, weight, bias, 1e-5, true); });
    const auto tokens = (at::randn({2, 9, 75}) * 2 - 0.5).to(dtype);
    const auto w = at::randn({75}), b = at::randn({75});
    expect_agree([&] { return fused_layer_norm(tokens, w, b, 1e-5); });
    const auto projected = (at::randn({2, 7, 2 * 83}) * 3).to(dtype);
    expect_agree([&] { return fused_geglu(projected); });
  }
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
