// The ControlNet against diffusers 0.27.2 (float32): one call at a 16x16 latent from the fixture
// manifest's controlnet_forward (hint embedding, the six down residuals, the middle one) and the
// UNet's output with and without those residuals. Tolerance: 1e-4 of each reference's largest
// magnitude, as for every fp32 component output.
#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "models/controlnet.h"
#include "models/unet.h"
#include "models/weights.h"
#include "support/fixtures.h"
#include "util/error.h"

namespace diffuse::models {
namespace {

namespace fs = std::filesystem;
using test::fixtures_dir;
using test::kComponentTolerance;
using test::read_json;
using test::read_reference;
using test::relative_max_error;

TensorMap controlnet_test_weights(const fs::path& file) {
  auto st = io::SafetensorsFile::open(file);
  TensorMap weights;
  for (const auto& info : st.tensors()) weights[info.name] = st.tensor(info.name, at::kFloat);
  return weights;
}

template <typename Module, typename Config>
Module controlnet_test_load(const fs::path& folder) {
  Module module(Config::from_json(read_json(folder / "config.json")));
  load_weights(*module, controlnet_test_weights(folder / "diffusion_pytorch_model.safetensors"), {folder.string(), {}, {}});
  module->eval();
  return module;
}

struct ForwardCase {
  std::string run;        // the manifest run holding controlnet_forward
  std::string base;       // fixture model folder
  std::string net;        // ControlNet fixture folder
};

class ControlNetForward : public ::testing::TestWithParam<ForwardCase> {
 protected:
  fs::path dir() const { return fixtures_dir() / "controlnet"; }
  nlohmann::json forward_case() const {
    const auto manifest = read_json(dir() / "manifest.json");
    for (const auto& run : manifest.at("runs")) {
      if (run.at("id") == GetParam().run) return run.at("controlnet_forward");
    }
    throw std::runtime_error("no run " + GetParam().run);
  }
  torch::NoGradGuard no_grad;
};

TEST_P(ControlNetForward, MatchesDiffusers) {
  const auto f = forward_case();
  const fs::path refs = dir() / "refs";
  auto net = controlnet_test_load<ControlNetModel, ControlNetConfig>(dir() / GetParam().net / "diffusers");
  auto unet = controlnet_test_load<UNet2DConditionModel, UNetConfig>(fixtures_dir() / GetParam().base / "diffusers/unet");
  const auto latent = read_reference(refs / f.at("latent"));
  const auto context = read_reference(refs / f.at("encoder_hidden_states"));
  const auto image = read_reference(refs / f.at("controlnet_cond"));
  const auto t = at::tensor({f.at("timestep").get<double>()});
  AddedConditioning added;
  const AddedConditioning* extra = nullptr;
  if (f.contains("text_embeds")) {
    added.text_embeds = read_reference(refs / f.at("text_embeds"));
    added.time_ids = at::tensor(f.at("time_ids").get<std::vector<float>>()).unsqueeze(0);
    extra = &added;
  }

  const double hint_error = relative_max_error(net->embed_hint(image, latent), read_reference(refs / f.at("hint_embedding")));
  EXPECT_LT(hint_error, kComponentTolerance);
  const auto residuals = net->forward(latent, t, context, image, {f.at("conditioning_scale").get<double>(), false}, extra);
  ASSERT_EQ(residuals.down.size(), f.at("down_residuals").size());
  double worst = 0;
  for (size_t i = 0; i < residuals.down.size(); ++i) {
    const double error = relative_max_error(residuals.down[i], read_reference(refs / f.at("down_residuals")[i]));
    EXPECT_LT(error, kComponentTolerance) << "down residual " << i;
    worst = std::max(worst, error);
  }
  const double mid_error = relative_max_error(residuals.mid, read_reference(refs / f.at("mid_residual")));
  EXPECT_LT(mid_error, kComponentTolerance);
  const double plain_error = relative_max_error(unet->forward(latent, t, context, extra),
                                                read_reference(refs / f.at("unet_out_without_control")));
  const double control_error = relative_max_error(unet->forward(latent, t, context, extra, {}, &residuals),
                                                  read_reference(refs / f.at("unet_out_with_control")));
  EXPECT_LT(plain_error, kComponentTolerance);
  EXPECT_LT(control_error, kComponentTolerance);
  std::printf("[%s] hint %.2e, down residuals <= %.2e, mid %.2e, unet plain %.2e, with control %.2e\n",
              GetParam().net.c_str(), hint_error, worst, mid_error, plain_error, control_error);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ControlNetForward,
                         ::testing::Values(ForwardCase{"cn_euler_8_s1.0", "tiny-sd1", "tiny-sd1-cn"},
                                           ForwardCase{"xl_cn_euler_6_s1.0", "tiny-sdxl", "tiny-sdxl-cn"}),
                         [](const auto& info) { return info.param.base == "tiny-sdxl" ? std::string("sdxl") : std::string("sd1"); });

TEST(ControlNetGuessMode, ScalesAreDiffusersLogspace) {
  const auto run = read_json(fixtures_dir() / "controlnet/manifest.json").at("runs");
  for (const auto& r : run) {
    if (!r.contains("guess_mode_scales")) continue;
    const auto expected = r.at("guess_mode_scales").get<std::vector<double>>();
    const auto scales = guess_mode_scales(expected.size(), r.at("controlnets")[0].at("conditioning_scale").get<double>());
    ASSERT_EQ(scales.size(), expected.size());
    for (size_t i = 0; i < scales.size(); ++i) EXPECT_EQ(static_cast<float>(scales[i]), static_cast<float>(expected[i])) << i;
  }
}

TEST(ControlNetConfigTest, InferredFromShapesEqualsTheFolderConfig) {
  for (const std::string net : {"tiny-sd1-cn", "tiny-sdxl-cn"}) {
    const auto folder = fixtures_dir() / "controlnet" / net / "diffusers";
    const auto from_json = ControlNetConfig::from_json(read_json(folder / "config.json"));
    const std::string base = net == "tiny-sd1-cn" ? "tiny-sd1" : "tiny-sdxl";
    const auto unet = UNetConfig::from_json(read_json(fixtures_dir() / base / "diffusers/unet/config.json"));
    const auto inferred = ControlNetConfig::infer(controlnet_test_weights(folder / "diffusion_pytorch_model.safetensors"), &unet);
    // The training size is no part of a ControlNet's config.json (the inferred one is the base's).
    auto inferred_json = inferred.to_json(), expected_json = from_json.to_json();
    inferred_json.erase("sample_size");
    expected_json.erase("sample_size");
    EXPECT_EQ(inferred_json.dump(), expected_json.dump()) << net;
  }
}

TEST(ControlNetForwardErrors, ControlImageOfTheWrongSizeIsNamed) {
  const auto folder = fixtures_dir() / "controlnet/tiny-sd1-cn/diffusers";
  auto net = controlnet_test_load<ControlNetModel, ControlNetConfig>(folder);
  torch::NoGradGuard no_grad;
  try {
    net->forward(at::zeros({1, 4, 16, 16}), at::tensor({500.0}), at::zeros({1, 77, 32}), at::zeros({1, 3, 16, 16}));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("control image has shape [1, 3, 16, 16], expected [1, 3, 32, 32]"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace diffuse::models
