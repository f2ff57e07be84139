// Golden tests: each network, built from its diffusers config and loaded with the fixture
// weights, reproduces the reference outputs (diffusers 0.27.2 / transformers, float32).
// Tolerance: 1e-4 of the reference's largest magnitude, as for every fp32 component output.
#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "models/clip_text_encoder.h"
#include "models/unet.h"
#include "models/vae.h"
#include "models/weights.h"
#include "support/fixtures.h"
#include "util/error.h"

namespace diffuse::models {
namespace {

namespace fs = std::filesystem;
using test::fixtures_dir;
using test::read_json;
using test::read_reference;
using test::relative_max_error;

using test::kComponentTolerance;

TensorMap read_weights(const fs::path& file) {
  auto st = io::SafetensorsFile::open(file);
  TensorMap weights;
  for (const auto& info : st.tensors()) weights[info.name] = st.tensor(info.name, at::kFloat);
  return weights;
}

fs::path weights_file(const fs::path& folder) {
  for (const char* name : {"diffusion_pytorch_model.safetensors", "model.safetensors"}) {
    if (fs::exists(folder / name)) return folder / name;
  }
  throw std::runtime_error("no weights in " + folder.string());
}

template <typename Module, typename Config>
Module load_component(const fs::path& model_dir, const std::string& component) {
  const auto folder = model_dir / "diffusers" / component;
  Module module(Config::from_json(read_json(folder / "config.json")));
  load_weights(*module, read_weights(weights_file(folder)), {component, {}, ClipTextModelImpl::optional_tensors()});
  module->eval();
  return module;
}

class GoldenModels : public ::testing::TestWithParam<std::string> {
 protected:
  fs::path model_dir() const { return fixtures_dir() / GetParam(); }
  fs::path refs() const { return model_dir() / "refs"; }
  nlohmann::json manifest() const { return read_json(model_dir() / "manifest.json"); }
  torch::NoGradGuard no_grad;
};

TEST_P(GoldenModels, TextEncoderHiddenStates) {
  auto encoder = load_component<ClipTextModel, TextEncoderConfig>(model_dir(), "text_encoder");
  const auto prompts = manifest().at("text_encoder");
  ASSERT_FALSE(prompts.empty());
  for (const auto& prompt : prompts) {
    auto ids = at::tensor(prompt.at("input_ids").get<std::vector<int64_t>>(), at::kLong).unsqueeze(0);
    auto out = encoder->forward(ids);
    const auto last = read_reference(refs() / prompt.at("last_hidden_state").get<std::string>());
    const auto penultimate = read_reference(refs() / prompt.at("penultimate_hidden_state").get<std::string>());
    const auto penultimate_ln = read_reference(refs() / prompt.at("penultimate_final_ln").get<std::string>());
    const double e_last = relative_max_error(out.last_hidden_state, last);
    const double e_pen = relative_max_error(out.hidden_states[out.hidden_states.size() - 2], penultimate);
    const double e_pen_ln = relative_max_error(encoder->encode(ids, 1), penultimate_ln);
    RecordProperty("max_relative_error", std::to_string(std::max({e_last, e_pen, e_pen_ln})));
    EXPECT_LT(e_last, kComponentTolerance) << prompt.at("prompt");
    EXPECT_LT(e_pen, kComponentTolerance) << prompt.at("prompt");
    EXPECT_LT(e_pen_ln, kComponentTolerance) << prompt.at("prompt");
    std::printf("[%s] text encoder '%s': last %.2e, penultimate %.2e, penultimate+ln %.2e\n", GetParam().c_str(),
                prompt.at("prompt").get<std::string>().c_str(), e_last, e_pen, e_pen_ln);
  }
}

TEST_P(GoldenModels, UNetEvaluation) {
  auto unet = load_component<UNet2DConditionModel, UNetConfig>(model_dir(), "unet");
  const auto evaluations = manifest().at("unet");
  ASSERT_FALSE(evaluations.empty());
  for (const auto& ref : evaluations) {
    const auto latent = read_reference(refs() / ref.at("latent").get<std::string>());
    const auto context = read_reference(refs() / ref.at("encoder_hidden_states").get<std::string>());
    const auto expected = read_reference(refs() / ref.at("output").get<std::string>());
    auto out = unet->forward(latent, at::tensor({ref.at("timestep").get<double>()}), context);
    const double error = relative_max_error(out, expected);
    std::printf("[%s] unet t=%d: %.2e\n", GetParam().c_str(), ref.at("timestep").get<int>(), error);
    EXPECT_LT(error, kComponentTolerance);
  }
}

TEST_P(GoldenModels, VaeDecode) {
  auto vae = load_component<AutoencoderKL, VaeConfig>(model_dir(), "vae");
  const auto decode = manifest().at("vae").at("decode");
  const auto latent = read_reference(refs() / decode.at("input_latent").get<std::string>());
  const auto expected = read_reference(refs() / decode.at("output").get<std::string>());
  const double error = relative_max_error(vae->decode(latent), expected);
  std::printf("[%s] vae decode: %.2e\n", GetParam().c_str(), error);
  EXPECT_LT(error, kComponentTolerance);
}

TEST_P(GoldenModels, VaeEncode) {
  auto vae = load_component<AutoencoderKL, VaeConfig>(model_dir(), "vae");
  const auto encode = manifest().at("vae").at("encode");
  const auto image = read_reference(refs() / encode.at("input_image").get<std::string>());
  const auto dist = vae->encode(image);
  const double e_mean = relative_max_error(dist.mean, read_reference(refs() / encode.at("mean").get<std::string>()));
  const double e_logvar =
      relative_max_error(dist.logvar, read_reference(refs() / encode.at("logvar").get<std::string>()));
  const double e_std = relative_max_error(dist.std, read_reference(refs() / encode.at("std").get<std::string>()));
  std::printf("[%s] vae encode: mean %.2e, logvar %.2e, std %.2e\n", GetParam().c_str(), e_mean, e_logvar, e_std);
  EXPECT_LT(e_mean, kComponentTolerance);
  EXPECT_LT(e_logvar, kComponentTolerance);
  EXPECT_LT(e_std, kComponentTolerance);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenModels, ::testing::Values("tiny-sd1", "tiny-sd2v"));

TEST(LoadWeights, ReportsWrongShapeByName) {
  UNetConfig config = UNetConfig::from_json(read_json(fixtures_dir() / "tiny-sd1/diffusers/unet/config.json"));
  UNet2DConditionModel unet(config);
  auto weights = read_weights(weights_file(fixtures_dir() / "tiny-sd1/diffusers/unet"));
  weights["conv_in.weight"] = at::zeros({32, 8, 3, 3});
  try {
    load_weights(*unet, weights, {"unet.safetensors", {}, {}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "unet.safetensors: tensor 'conv_in.weight' has shape [32,8,3,3], expected [32,4,3,3]");
  }
}

TEST(LoadWeights, ReportsMissingAndUnexpectedByName) {
  VaeConfig config = VaeConfig::from_json(read_json(fixtures_dir() / "tiny-sd1/diffusers/vae/config.json"));
  AutoencoderKL vae(config);
  auto weights = read_weights(weights_file(fixtures_dir() / "tiny-sd1/diffusers/vae"));
  weights.erase("decoder.conv_out.bias");
  weights["decoder.extra.weight"] = at::zeros({1});
  try {
    load_weights(*vae, weights, {"vae.safetensors", {}, {}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("1 missing tensors: 'decoder.conv_out.bias'"), std::string::npos) << message;
    EXPECT_NE(message.find("1 unexpected tensors: 'decoder.extra.weight'"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace diffuse::models
