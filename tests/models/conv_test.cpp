// models::Conv2d packed for inference computes what libtorch's Conv2d computes, for every shape of
// convolution the UNet and VAE use, and stops holding the dense kernel.
#include <gtest/gtest.h>

#include "models/conv.h"
#include "models/kernel_options.h"
#include "models/layers.h"
#include "models/parameter_init.h"
#include "util/error.h"

namespace diffuse::models {
namespace {

struct ConvCase {
  int64_t in, out, kernel, stride, padding, side;
};

class PackedConv : public ::testing::TestWithParam<at::ScalarType> {};

TEST_P(PackedConv, MatchesTheDenseConvolution) {
  const auto dtype = GetParam();
  if (dtype == at::kBFloat16 && !bf16_supported()) GTEST_SKIP() << "bf16 is refused below CPU class avx512";
  torch::NoGradGuard no_grad;
  torch::manual_seed(3);
  // 3x3 same-size, 1x1 shortcut, UNet stride-2 downsample, VAE downsample (padding 0), odd side.
  for (const auto& c : {ConvCase{8, 16, 3, 1, 1, 12}, ConvCase{16, 8, 1, 1, 0, 9}, ConvCase{8, 8, 3, 2, 1, 10},
                        ConvCase{8, 8, 3, 2, 0, 11}, ConvCase{4, 32, 3, 1, 1, 5}}) {
    SCOPED_TRACE("in " + std::to_string(c.in) + " out " + std::to_string(c.out) + " kernel " +
                 std::to_string(c.kernel) + " stride " + std::to_string(c.stride));
    auto conv = conv2d(c.in, c.out, c.kernel, c.stride, c.padding);
    conv->to(dtype);
    const auto x = at::randn({2, c.in, c.side, c.side}).to(dtype);
    const auto dense = conv(x);
    if (!conv->pack_for_inference()) GTEST_SKIP() << "oneDNN cannot run " << c10::toString(dtype) << " here";
    EXPECT_TRUE(conv->packed());
    EXPECT_EQ(conv->weight.numel(), 0);  // the dense kernel is released
    const auto packed = conv(x);
    ASSERT_EQ(packed.sizes(), dense.sizes());
    EXPECT_EQ(packed.scalar_type(), dtype);
    const double tolerance = dtype == at::kFloat ? 1e-5 : 2e-2;
    const double scale = dense.to(at::kFloat).abs().max().item<double>();
    EXPECT_LE((packed.to(at::kFloat) - dense.to(at::kFloat)).abs().max().item<double>(), tolerance * scale);
  }
}

INSTANTIATE_TEST_SUITE_P(Precisions, PackedConv, ::testing::Values(at::kFloat, at::kBFloat16),
                         [](const auto& info) { return std::string(c10::toString(info.param)); });

TEST(PackedConvTraining, RefusesToRecordGradients) {
  auto conv = conv2d(4, 4, 3);
  {
    torch::NoGradGuard no_grad;
    if (!conv->pack_for_inference()) GTEST_SKIP() << "no oneDNN in this libtorch";
  }
  const auto x = at::randn({1, 4, 6, 6}).requires_grad_(true);
  try {
    conv(x);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("packed for inference"), std::string::npos) << e.what();
  }
}

TEST(PackConvolutions, PacksEveryConvolutionOfAModuleTree) {
  ResnetBlock2D block(8, 16, 0, 1, 1e-5);  // conv1, conv2 and a 1x1 shortcut
  EXPECT_EQ(pack_convolutions(*block), at::hasMKLDNN() ? 3 : 0);
}

// Loading builds its layers without libtorch's random initialization: same shapes, options and
// results once the values are copied in, and the guard ends with its scope.
TEST(SkipParameterInit, BuildsTheSameLayersWithoutDrawingValues) {
  torch::manual_seed(3);
  Conv2d reference(torch::nn::Conv2dOptions(4, 8, 3).stride(2).padding(1));
  Linear reference_linear(torch::nn::LinearOptions(6, 5).bias(false));
  Conv2d conv(nullptr);
  Linear linear(nullptr);
  {
    const SkipParameterInit from_file;
    EXPECT_TRUE(SkipParameterInit::active());
    conv = Conv2d(torch::nn::Conv2dOptions(4, 8, 3).stride(2).padding(1));
    linear = Linear(torch::nn::LinearOptions(6, 5).bias(false));
  }
  EXPECT_FALSE(SkipParameterInit::active());
  EXPECT_EQ(conv->weight.sizes(), reference->weight.sizes());
  EXPECT_EQ(conv->bias.sizes(), (std::vector<int64_t>{8}));
  EXPECT_EQ(conv->options.in_channels(), 4);
  EXPECT_EQ((*conv->options.stride())[0], 2);
  EXPECT_EQ(conv->named_parameters().size(), 2u);
  EXPECT_EQ(linear->weight.sizes(), (std::vector<int64_t>{5, 6}));
  EXPECT_FALSE(linear->bias.defined());
  EXPECT_EQ(linear->options.in_features(), 6);
  torch::NoGradGuard no_grad;
  conv->weight.copy_(reference->weight);
  conv->bias.copy_(reference->bias);
  linear->weight.copy_(reference_linear->weight);
  const auto x = at::randn({1, 4, 9, 9});
  EXPECT_TRUE(conv(x).equal(reference(x)));
  EXPECT_EQ(conv(x).sizes(), (std::vector<int64_t>{1, 8, 5, 5}));
  const auto v = at::randn({2, 6});
  EXPECT_TRUE(linear(v).equal(reference_linear(v)));
}

}  // namespace
}  // namespace diffuse::models
