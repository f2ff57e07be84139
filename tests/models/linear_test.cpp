// models::Linear packed for inference computes what libtorch's Linear computes, for the row counts
// and widths the models use, and stops holding the dense weight.
#include <gtest/gtest.h>

#include "models/kernel_options.h"
#include "models/layers.h"
#include "models/linear.h"
#include "util/error.h"

namespace diffuse::models {
namespace {

class PackedLinear : public ::testing::TestWithParam<at::ScalarType> {};

double max_difference(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kFloat) - b.to(at::kFloat)).abs().max().item<double>();
}

TEST_P(PackedLinear, MatchesTheDenseProduct) {
  const auto dtype = GetParam();
  if (dtype == at::kBFloat16 && !bf16_supported()) GTEST_SKIP() << "bf16 is refused below CPU class avx512";
  torch::NoGradGuard no_grad;
  torch::manual_seed(5);
  for (const bool bias : {true, false}) {
    SCOPED_TRACE(bias ? "with bias" : "without bias");
    Linear linear(torch::nn::LinearOptions(40, 24).bias(bias));
    linear->to(dtype);
    // Token batches (3-D, as the transformer passes them), a timestep embedding's two rows, a single
    // row, and row counts other than the one the weight's layout was chosen for.
    const std::vector<at::Tensor> inputs{at::randn({2, 77, 40}), at::randn({2, 40}), at::randn({1, 40}),
                                         at::randn({2, 4096, 40}), at::randn({3, 5, 7, 40})};
    std::vector<at::Tensor> dense;
    for (const auto& x : inputs) dense.push_back(linear(x.to(dtype)));
    if (!linear->pack_for_inference()) GTEST_SKIP() << "oneDNN cannot run " << c10::toString(dtype) << " here";
    EXPECT_TRUE(linear->packed());
    EXPECT_EQ(linear->weight.numel(), 0);  // the dense weight is released
    const double tolerance = dtype == at::kFloat ? 1e-5 : 2e-2;
    for (size_t i = 0; i < inputs.size(); ++i) {
      SCOPED_TRACE("input " + c10::str(inputs[i].sizes()));
      const auto packed = linear(inputs[i].to(dtype));
      ASSERT_EQ(packed.sizes(), dense[i].sizes());
      EXPECT_EQ(packed.scalar_type(), dtype);
      EXPECT_LE(max_difference(packed, dense[i]), tolerance * dense[i].to(at::kFloat).abs().max().item<double>());
    }
    // A second call reuses the product set up for that row count.
    EXPECT_TRUE(at::equal(linear(inputs[0].to(dtype)), linear(inputs[0].to(dtype))));
  }
}

TEST_P(PackedLinear, ReadsStridedInputs) {
  const auto dtype = GetParam();
  if (dtype == at::kBFloat16 && !bf16_supported()) GTEST_SKIP() << "bf16 is refused below CPU class avx512";
  torch::NoGradGuard no_grad;
  Linear linear(16, 8);
  linear->to(dtype);
  const auto x = at::randn({2, 16, 6}).to(dtype).transpose(1, 2);  // (2, 6, 16), not contiguous
  const auto dense = linear(x);
  if (!linear->pack_for_inference()) GTEST_SKIP() << "oneDNN cannot run " << c10::toString(dtype) << " here";
  EXPECT_LE(max_difference(linear(x), dense), dtype == at::kFloat ? 1e-5 : 5e-2);
}

INSTANTIATE_TEST_SUITE_P(Precisions, PackedLinear, ::testing::Values(at::kFloat, at::kBFloat16),
                         [](const auto& info) { return std::string(c10::toString(info.param)); });

void expect_error(const std::function<void()>& call, const std::string& message) {
  try {
    call();
    FAIL() << "expected an error containing '" << message << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
  }
}

TEST(PackedLinearErrors, NameTheProblem) {
  Linear linear(8, 4);
  {
    torch::NoGradGuard no_grad;
    if (!linear->pack_for_inference()) GTEST_SKIP() << "no oneDNN in this build";
  }
  expect_error([&] { linear(at::randn({2, 8}).requires_grad_(true)); }, "packed for inference");
  torch::NoGradGuard no_grad;
  expect_error([&] { linear(at::randn({2, 8}, at::kDouble)); }, "packed for Float");
  expect_error([&] { linear(at::randn({2, 6})); }, "expected inputs with 8 features in the last dimension, got [2, 6]");
  EXPECT_EQ(linear(at::randn({0, 8})).sizes(), (std::vector<int64_t>{0, 4}));
}

TEST(PackLinearLayers, PacksEveryLinearOfAModuleTree) {
  Attention attention(16, 12, 2, 8, false);  // to_q, to_k, to_v and to_out.0
  const int packed = pack_linear_layers(*attention);
  if (packed == 0) GTEST_SKIP() << "no oneDNN in this build";
  EXPECT_EQ(packed, 4);
  torch::NoGradGuard no_grad;
  EXPECT_EQ(attention(at::randn({2, 10, 16}), at::randn({2, 7, 12})).sizes(), (std::vector<int64_t>{2, 10, 16}));
}

}  // namespace
}  // namespace diffuse::models
