// Parameter counts checked against figures computed independently: the fixtures' safetensors headers
// summed here, and the published SD 1.5 totals for full-size networks built from the default configs.
#include <gtest/gtest.h>

#include <fstream>

#include "explain/model_inventory.h"
#include "models/clip_text_encoder.h"
#include "models/unet.h"
#include "models/vae.h"
#include "support/fixtures.h"

namespace diffuse::explain {
namespace {

namespace fs = std::filesystem;
using test::fixtures_dir;

struct HeaderTotals {
  int64_t tensors = 0, parameters = 0, matrices = 0;
};

// Reads a safetensors header by hand (8-byte length, JSON) and sums the shapes of the tensors whose
// names start with `prefix`, leaving out the position_ids buffer, which is no parameter.
HeaderTotals sum_header(const fs::path& file, const std::string& prefix = "") {
  std::ifstream in(file, std::ios::binary);
  uint64_t length = 0;
  in.read(reinterpret_cast<char*>(&length), 8);
  std::string text(length, '\0');
  in.read(text.data(), static_cast<std::streamsize>(length));
  HeaderTotals totals;
  const auto header = nlohmann::json::parse(text);
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__" || name.rfind(prefix, 0) != 0 || name.find("position_ids") != std::string::npos) continue;
    int64_t count = 1;
    for (const auto& size : info.at("shape")) count *= size.get<int64_t>();
    totals.tensors += 1;
    totals.parameters += count;
    totals.matrices += info.at("shape").size() >= 2 ? 1 : 0;
  }
  return totals;
}

void expect_component(const ComponentInventory& component, const HeaderTotals& expected) {
  EXPECT_EQ(static_cast<int64_t>(component.tensors.size()), expected.tensors) << component.label;
  EXPECT_EQ(component.parameters(), expected.parameters) << component.label;
  EXPECT_EQ(component.matrices(), expected.matrices) << component.label;
}

TEST(ModelInventory, DiffusersFolderMatchesTheFileHeaders) {
  const auto root = fixtures_dir() / "tiny-sd1/diffusers";
  const auto inventory = inspect_model(root);
  ASSERT_EQ(inventory.components.size(), 3u);
  expect_component(inventory.components[0], sum_header(root / "text_encoder/model.safetensors"));
  expect_component(inventory.components[1], sum_header(root / "unet/diffusion_pytorch_model.safetensors"));
  expect_component(inventory.components[2], sum_header(root / "vae/diffusion_pytorch_model.safetensors"));
  // The figures themselves, so a change in the fixtures or the counting shows up here.
  EXPECT_EQ(inventory.components[0].parameters(), 1617529);
  EXPECT_EQ(inventory.components[1].parameters(), 1427012);
  EXPECT_EQ(inventory.components[2].parameters(), 658375);
  EXPECT_EQ(inventory.tensor_count(), 84 + 304 + 124);
  EXPECT_EQ(inventory.parameters(), 1617529 + 1427012 + 658375);
  EXPECT_EQ(inventory.not_loaded, std::vector<std::string>{"text_encoder/text_model.embeddings.position_ids"});
}

TEST(ModelInventory, SingleFileListsTheFileNamesAndTheSameTotals) {
  const auto file = fixtures_dir() / "tiny-sd1/tiny-sd1.safetensors";
  const auto inventory = inspect_model(file);
  expect_component(inventory.components[0], sum_header(file, "cond_stage_model."));
  expect_component(inventory.components[1], sum_header(file, "model.diffusion_model."));
  expect_component(inventory.components[2], sum_header(file, "first_stage_model."));
  EXPECT_EQ(inventory.components[1].tensors.front().name.rfind("model.diffusion_model.", 0), 0u);
  EXPECT_EQ(inventory.parameters(), inspect_model(fixtures_dir() / "tiny-sd1/diffusers").parameters());
}

TEST(ModelInventory, ArchitectureComesFromTheConfigs) {
  const auto a = inspect_model(fixtures_dir() / "tiny-sd1/diffusers").architecture;
  EXPECT_EQ(a.family, "sd1");
  EXPECT_EQ(a.unet.block_out_channels, (std::vector<int>{32, 64}));
  EXPECT_EQ(a.vae.latent_channels, 4);
  EXPECT_EQ(a.vae.downscale_factor(), 2);
  EXPECT_EQ(a.text_encoder.hidden_size, 32);
  EXPECT_EQ(a.prediction_type, "epsilon");
  const auto v = inspect_model(fixtures_dir() / "tiny-sd2v/diffusers").architecture;
  EXPECT_EQ(v.family, "sd2");
  EXPECT_EQ(v.prediction_type, "v_prediction");
  EXPECT_TRUE(v.unet.use_linear_projection);
}

TEST(ModelInventory, JsonCarriesTotalsAndTensors) {
  const auto inventory = inspect_model(fixtures_dir() / "tiny-sd1/diffusers");
  const auto json = to_json(inventory);
  EXPECT_EQ(json.at("total").at("parameters").get<int64_t>(), inventory.parameters());
  EXPECT_EQ(json.at("components").at(1).at("component"), "unet");
  const auto& first = json.at("components").at(0).at("tensors").at(0);
  EXPECT_EQ(first.at("dtype"), "F16");
  EXPECT_EQ(json.at("architecture").at("vae").at("scaling_factor").get<double>(), 0.18215);
}

TEST(ModelInventory, ThousandsSeparators) {
  EXPECT_EQ(with_thousands(0), "0");
  EXPECT_EQ(with_thousands(999), "999");
  EXPECT_EQ(with_thousands(1000), "1,000");
  EXPECT_EQ(with_thousands(859520964), "859,520,964");
}

// SD 1.5's published sizes: CLIP ViT-L/14 text model 123,060,480; UNet 859,520,964; VAE 83,653,863.
// The default configs are SD 1.5's, so networks built from them with random weights must match.
TEST(ModelInventory, FullSizeSd15FromTheDefaultConfigs) {
  torch::NoGradGuard no_grad;
  {
    models::ClipTextModel text_encoder(models::TextEncoderConfig{});
    const auto c = inventory_of_module("text_encoder", *text_encoder);
    EXPECT_EQ(c.parameters(), 123060480);
    EXPECT_EQ(c.tensors.size(), 196u);
  }
  {
    models::UNet2DConditionModel unet(models::UNetConfig{});
    const auto c = inventory_of_module("unet", *unet);
    EXPECT_EQ(c.parameters(), 859520964);
    EXPECT_EQ(c.tensors.size(), 686u);
  }
  {
    models::AutoencoderKL vae(models::VaeConfig{});
    const auto c = inventory_of_module("vae", *vae);
    EXPECT_EQ(c.parameters(), 83653863);
    EXPECT_EQ(c.tensors.size(), 248u);
  }
}

}  // namespace
}  // namespace diffuse::explain

namespace diffuse::explain {
namespace {

// A ControlNet's inventory: every tensor of the file (685,200 parameters, as the fixtures' model_check
// says), in both layouts, and the facts of its architecture.
TEST(ControlNetInventory, ListsTheFileAndItsFacts) {
  const auto dir = test::fixtures_dir() / "controlnet";
  const auto expected = test::read_json(dir / "model_check.json").at("nets").at("tiny-sd1-cn").at("parameters").get<int64_t>();
  for (const auto& path : {dir / "tiny-sd1-cn/tiny-sd1-cn.safetensors", dir / "tiny-sd1-cn/diffusers"}) {
    const auto inventory = inspect_model(path);
    ASSERT_EQ(inventory.components.size(), 1u);
    EXPECT_EQ(inventory.components[0].label, "ControlNet");
    EXPECT_EQ(inventory.parameters(), expected) << path;
    EXPECT_EQ(inventory.tensor_count(), 170) << path;
    const auto text = to_text(inventory, false);
    EXPECT_NE(text.find("hint encoder: 3 channels in, widths 16, 32, downscale x2"), std::string::npos) << text;
    EXPECT_NE(text.find("ControlNet for an SD 1.x/2.x-style model, text width 32"), std::string::npos) << text;
  }
}

}  // namespace
}  // namespace diffuse::explain
