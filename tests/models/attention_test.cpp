// The fused attention kernel computes softmax(q kᵀ / sqrt(d)) v as a double-precision reference does,
// in bf16 and fp32, for the head sizes and token counts of the UNet, the VAE and the tiny fixtures.
#include <gtest/gtest.h>

#include <cmath>

#include "models/attention.h"
#include "models/fused_attention.h"
#include "models/kernel_options.h"
#include "util/error.h"

namespace diffuse::models {
namespace {

at::Tensor reference_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads) {
  const auto b = q.size(0), n = q.size(1), m = k.size(1), width = q.size(2), d = width / heads;
  const auto split = [&](const at::Tensor& x, int64_t tokens) {
    return x.to(at::kDouble).view({b, tokens, heads, d}).permute({0, 2, 1, 3});
  };
  const auto scores = at::matmul(split(q, n), split(k, m).transpose(-1, -2)) / std::sqrt(static_cast<double>(d));
  return at::matmul(scores.softmax(-1), split(v, m)).permute({0, 2, 1, 3}).reshape({b, n, width});
}

struct AttentionCase {
  int64_t batch, queries, keys, heads, head_dim;
  double query_scale;  // large values test the softmax's overflow handling
};

class FusedAttention : public ::testing::TestWithParam<std::tuple<at::ScalarType, AttentionCase>> {};

TEST_P(FusedAttention, MatchesTheReference) {
  const auto [dtype, c] = GetParam();
  if (!fused_attention_supported(dtype))
    GTEST_SKIP() << "fused " << c10::toString(dtype) << " attention needs CPU class "
                 << (dtype == at::kBFloat16 ? "avx512_bf16" : "avx512") << "; this run's is "
                 << cpu_class_name(kernel_options().cpu);
  torch::NoGradGuard no_grad;
  torch::manual_seed(7);
  const auto width = c.heads * c.head_dim;
  const auto q = (at::randn({c.batch, c.queries, width}) * c.query_scale).to(dtype);
  const auto k = at::randn({c.batch, c.keys, width}).to(dtype);
  const auto v = at::randn({c.batch, c.keys, width}).to(dtype);
  const auto fused = fused_attention(q, k, v, c.heads);
  ASSERT_EQ(fused.sizes(), q.sizes());
  ASSERT_EQ(fused.scalar_type(), dtype);
  const auto expected = reference_attention(q, k, v, c.heads);
  const auto error = (fused.to(at::kDouble) - expected).abs();
  // bf16 output rounding is 2^-9 relative, and bf16 probabilities add about as much. In fp32 a score's
  // rounding (its size times 6e-8) becomes the exponential's relative error: up to 3e-5 of the
  // output's scale for the "sharp" case, whose scores reach 300.
  const double largest = dtype == at::kBFloat16 ? 1e-2 : 1e-4, mean = dtype == at::kBFloat16 ? 3e-3 : 1e-6;
  EXPECT_LE(error.max().item<double>(), largest * expected.abs().max().item<double>());
  EXPECT_LE(error.mean().item<double>(), mean * expected.abs().mean().item<double>());
  EXPECT_TRUE(fused.isfinite().all().item<bool>());
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, FusedAttention,
    ::testing::Combine(::testing::Values(at::kBFloat16, at::kFloat),
    ::testing::Values(AttentionCase{2, 256, 256, 8, 40, 1.0},  // UNet top level (256 tokens at 128x128)
                      AttentionCase{2, 64, 77, 8, 80, 1.0},    // cross-attention to 77 text tokens
                      AttentionCase{2, 16, 16, 8, 160, 1.0},   // UNet deepest level
                      AttentionCase{1, 100, 100, 1, 512, 1.0}, // VAE mid-block, single head
                      AttentionCase{1, 37, 13, 3, 5, 1.0},     // odd head size, partial blocks and key vectors
                      AttentionCase{2, 50, 77, 2, 17, 1.0},    // head size just past one vector
                      AttentionCase{1, 30, 200, 2, 64, 40.0})), // nearly one-hot rows
    [](const auto& info) {
      const auto& c = std::get<1>(info.param);
      return std::string(c10::toString(std::get<0>(info.param))) + "_q" + std::to_string(c.queries) + "k" + std::to_string(c.keys) +
             "h" + std::to_string(c.heads) + "d" + std::to_string(c.head_dim) + (c.query_scale > 1 ? "sharp" : "");
    });

TEST(FusedAttentionInput, NamesWhatItCannotTake) {
  const auto q = at::randn({1, 4, 8});
  try {
    fused_attention(q, q.to(at::kDouble), q, 2);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bf16 or fp32"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Double"), std::string::npos) << e.what();
  }
  if (!fused_attention_supported(at::kFloat)) return;
  try {
    fused_attention(q, at::randn({1, 5, 8}), at::randn({1, 5, 8}), 3);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("do not fit 3 heads"), std::string::npos) << e.what();
  }
}

// The UNet reaches the kernel through scaled_dot_product_attention in inference, in both precisions.
TEST(ScaledDotProductAttention, AgreesAcrossPrecisions) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(11);
  const auto q = at::randn({2, 48, 64}), k = at::randn({2, 20, 64}), v = at::randn({2, 20, 64});
  const auto expected = reference_attention(q, k, v, 4);
  const auto fp32 = scaled_dot_product_attention(q, k, v, 4);
  EXPECT_EQ(fp32.scalar_type(), at::kFloat);
  EXPECT_LE((fp32.to(at::kDouble) - expected).abs().max().item<double>(), 1e-5);
  if (!bf16_supported()) return;  // refused below CPU class avx512 (models/kernel_options.h)
  const auto bf16 = scaled_dot_product_attention(q.to(at::kBFloat16), k.to(at::kBFloat16), v.to(at::kBFloat16), 4);
  EXPECT_EQ(bf16.scalar_type(), at::kBFloat16);
  EXPECT_LE((bf16.to(at::kDouble) - expected).abs().max().item<double>(), 3e-2);
}

}  // namespace
}  // namespace diffuse::models
