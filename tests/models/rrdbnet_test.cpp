// RRDBNet from a config: the sizes of the real Real-ESRGAN models and the fixture nets, as the upscale
// manifest records them, and the config inferred from each fixture file's shapes.
#include <gtest/gtest.h>

#include "io/upscaler_files.h"
#include "models/rrdbnet.h"
#include "models/weights.h"
#include "support/fixtures.h"
#include "util/error.h"

namespace diffuse::models {
namespace {

namespace fs = std::filesystem;

fs::path rrdb_fixtures() { return test::fixtures_dir() / "upscale"; }

int64_t module_parameters(torch::nn::Module& module) {
  int64_t count = 0;
  for (const auto& parameter : module.parameters()) count += parameter.numel();
  return count;
}

// The manifest's real_models: Real-ESRGAN's releases, by their documented sizes.
TEST(RrdbNetConfig, ParameterCountsOfTheRealEsrganModels) {
  const auto manifest = test::read_json(rrdb_fixtures() / "manifest.json");
  ASSERT_EQ(manifest.at("real_models").size(), 3u);
  for (const auto& [name, model] : manifest.at("real_models").items()) {
    RrdbNetConfig config;
    config.num_feat = model.at("num_feat");
    config.num_block = model.at("num_block");
    config.num_grow_ch = model.at("num_grow_ch");
    config.scale = model.at("scale");
    EXPECT_EQ(config.conv_first_in_channels(), model.at("conv_first_in_channels").get<int>()) << name;
    EXPECT_EQ(config.parameter_count(), model.at("parameters").get<int64_t>()) << name;
    RrdbNet net(config);
    EXPECT_EQ(module_parameters(*net), model.at("parameters").get<int64_t>()) << name;
    EXPECT_EQ(static_cast<int64_t>(net->named_parameters().size()), model.at("tensors").get<int64_t>()) << name;
  }
}

TEST(RrdbNetConfig, InferredFromEveryFixtureFile) {
  const auto manifest = test::read_json(rrdb_fixtures() / "manifest.json");
  const auto check = test::read_json(rrdb_fixtures() / "check.json");
  ASSERT_EQ(manifest.at("model_files").size(), 5u);
  for (const auto& entry : manifest.at("model_files")) {
    const std::string file = entry.at("file");
    const auto& weights = manifest.at("models").at(entry.at("weights").get<std::string>());
    const auto& inferred = check.at("models").at(file).at("inferred");
    const auto loaded = io::load_upscaler_file(rrdb_fixtures() / file, at::kFloat);
    EXPECT_EQ(loaded.layout == io::UpscalerLayout::BasicSR ? "new" : "old", entry.at("layout").get<std::string>()) << file;
    const auto config = RrdbNetConfig::infer(loaded.tensors, file);
    EXPECT_EQ(config.scale, inferred.at("scale").get<int>()) << file;
    EXPECT_EQ(config.num_in_ch, inferred.at("in_ch").get<int>()) << file;
    EXPECT_EQ(config.num_out_ch, inferred.at("out_ch").get<int>()) << file;
    EXPECT_EQ(config.num_feat, inferred.at("nf").get<int>()) << file;
    EXPECT_EQ(config.num_block, inferred.at("nb").get<int>()) << file;
    EXPECT_EQ(config.num_grow_ch, inferred.at("gc").get<int>()) << file;
    EXPECT_EQ(config.conv_first_in_channels(), weights.at("conv_first_in_channels").get<int>()) << file;
    EXPECT_EQ(config.parameter_count(), weights.at("parameters").get<int64_t>()) << file;
    // Strict: every tensor of the file has its place in the net and the net misses none.
    RrdbNet net(config);
    EXPECT_NO_THROW(load_weights(*net, loaded.tensors, {file, loaded.file_names, {}})) << file;
    EXPECT_EQ(static_cast<int64_t>(loaded.tensors.size()), entry.at("tensors").get<int64_t>()) << file;
  }
}

// x4 runs on any size; x2 and x1 unshuffle by 2 and 4, and need sides that are multiples of that.
TEST(RrdbNet, OutputSizeFollowsTheScale) {
  torch::NoGradGuard no_grad;
  for (int scale : {4, 2, 1}) {
    RrdbNetConfig config;
    config.num_feat = 8;
    config.num_block = 1;
    config.num_grow_ch = 4;
    config.scale = scale;
    EXPECT_EQ(config.unshuffle_factor(), 4 / scale);
    RrdbNet net(config);
    const auto out = net->forward(at::rand({1, 3, 8, 12}));
    EXPECT_EQ(out.sizes(), (std::vector<int64_t>{1, 3, 8 * scale, 12 * scale})) << "x" << scale;
  }
  RrdbNetConfig x2;
  x2.num_feat = 8;
  x2.num_block = 1;
  x2.num_grow_ch = 4;
  x2.scale = 2;
  RrdbNet net(x2);
  EXPECT_THROW(net->forward(at::rand({1, 3, 7, 8})), Error);
}

// ESRGAN's own layout reaches x8 with three upsamplings and no unshuffle.
TEST(RrdbNetConfig, UpsamplingsAndScale) {
  RrdbNetConfig config;
  config.upsamplings = 3;
  config.scale = 8;
  EXPECT_EQ(config.unshuffle_factor(), 1);
  EXPECT_NO_THROW(config.validate());
  config.scale = 3;
  EXPECT_THROW(config.validate(), InvalidParameter);
  config.upsamplings = 2;
  config.scale = 8;  // more than two x2 steps give
  EXPECT_THROW(config.validate(), InvalidParameter);
}

TEST(RrdbNetConfig, ImpossibleShapesNameTheTensor) {
  const auto loaded = io::load_upscaler_file(rrdb_fixtures() / "models/rrdbnet_x4.safetensors", at::kFloat);
  auto weights = loaded.tensors;
  weights["conv_first.weight"] = at::zeros({16, 5, 3, 3});
  try {
    RrdbNetConfig::infer(weights, "x4.safetensors");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x4.safetensors: tensor 'conv_first.weight' takes 5 channels"), std::string::npos)
        << e.what();
  }
  weights = loaded.tensors;
  weights.erase("conv_last.weight");
  try {
    RrdbNetConfig::infer(weights, "x4.safetensors");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'conv_last.weight' is missing"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace diffuse::models
