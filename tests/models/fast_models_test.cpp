// Golden tests for the few-step path (../shared/fixtures/tiny-fast): the LCM guidance embedding,
// one evaluation of an LCM UNet with its timestep_cond, and TAESD decode and encode from both of its
// file layouts (diffusers' AutoencoderTiny folder, taesd.py's taesd_encoder/decoder files).
// Tolerance 1e-4 of the reference's largest magnitude, as for every fp32 component output.
#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "io/taesd_files.h"
#include "models/taesd.h"
#include "models/unet.h"
#include "models/weights.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace diffuse::models {
namespace {

namespace fs = std::filesystem;
using test::fast_fixture_dir;
using test::fixtures_dir;
using test::read_json;
using test::read_reference;
using test::relative_max_error;

using test::kComponentTolerance;

fs::path refs() { return fast_fixture_dir() / "refs"; }
nlohmann::json manifest() { return read_json(fast_fixture_dir() / "manifest.json"); }

TinyAutoencoder load_taesd(const fs::path& path) {
  const auto files = io::load_taesd_files(path, at::kFloat);
  const auto config = files.config.is_null() ? TinyAutoencoderConfig::infer(files.tensors, files.source)
                                             : TinyAutoencoderConfig::from_json(files.config);
  TinyAutoencoder taesd(config);
  load_weights(*taesd, files.tensors, {files.source, files.file_names, {}});
  taesd->eval();
  return taesd;
}

// The three forms a user may point at: the diffusers folder, the decoder file (which finds its
// encoder beside it), and the folder holding taesd.py's two files.
std::vector<fs::path> taesd_forms() {
  return {fast_fixture_dir() / "taesd/diffusers", fast_fixture_dir() / "taesd/taesd_decoder.safetensors", fast_fixture_dir() / "taesd"};
}

TEST(LcmGuidanceEmbedding, MatchesDiffusers) {
  const auto references = manifest().at("lcm_w_embedding");
  ASSERT_EQ(references.size(), 3u);
  for (const auto& ref : references) {
    const auto expected = read_reference(refs() / ref.at("embedding").get<std::string>());
    const auto embedding = guidance_scale_embedding(ref.at("guidance_scale").get<double>(), 256);
    ASSERT_EQ(embedding.sizes(), expected.sizes());
    const double error = (embedding - expected).abs().max().item<double>();
    std::printf("w-embedding at guidance %.1f: max abs error %.2e\n", ref.at("guidance_scale").get<double>(), error);
    EXPECT_LT(error, 1e-5);
  }
  // Guidance 1 means w = 0: sin 0 = 0 and cos 0 = 1.
  const auto neutral = guidance_scale_embedding(1.0, 256);
  EXPECT_TRUE(neutral.narrow(1, 0, 128).eq(0).all().item<bool>());
  EXPECT_TRUE(neutral.narrow(1, 128, 128).eq(1).all().item<bool>());
}

TEST(LcmUNet, EvaluationWithTimestepCondMatchesDiffusers) {
  torch::NoGradGuard no_grad;
  const auto folder = fast_fixture_dir() / "tiny-lcm/diffusers/unet";
  const auto config = UNetConfig::from_json(read_json(folder / "config.json"));
  ASSERT_EQ(config.time_cond_proj_dim, 256);
  UNet2DConditionModel unet(config);
  auto file = io::SafetensorsFile::open(folder / "diffusion_pytorch_model.safetensors");
  TensorMap weights;
  for (const auto& info : file.tensors()) weights[info.name] = file.tensor(info.name, at::kFloat);
  ASSERT_EQ(weights.at("time_embedding.cond_proj.weight").sizes(), (std::vector<int64_t>{32, 256}));
  load_weights(*unet, weights, {"unet", {}, {}});
  unet->eval();
  EXPECT_EQ(UNetConfig::infer(weights).time_cond_proj_dim, 256);

  const auto evaluations = manifest().at("lcm_unet");
  ASSERT_FALSE(evaluations.empty());
  for (const auto& ref : evaluations) {
    const auto latent = read_reference(refs() / ref.at("latent").get<std::string>());
    const auto context = read_reference(refs() / ref.at("encoder_hidden_states").get<std::string>());
    const auto cond = read_reference(refs() / ref.at("timestep_cond").get<std::string>());
    const auto expected = read_reference(refs() / ref.at("output").get<std::string>());
    const auto t = at::tensor({ref.at("timestep").get<double>()});
    const auto out = unet->forward(latent, t, context, nullptr, cond);
    const double error = relative_max_error(out, expected);
    std::printf("lcm unet t=%d g=%.1f: %.2e\n", ref.at("timestep").get<int>(), ref.at("guidance_scale").get<double>(),
                error);
    EXPECT_LT(error, kComponentTolerance);
    // The embedding we compute is the one diffusers fed.
    EXPECT_LT((guidance_scale_embedding(ref.at("guidance_scale").get<double>(), 256) - cond).abs().max().item<double>(), 1e-5);
    // It matters: without it the UNet refuses, with another scale the output moves.
    EXPECT_THROW(unet->forward(latent, t, context), Error);
    const auto other = unet->forward(latent, t, context, nullptr, guidance_scale_embedding(1.0, 256));
    EXPECT_GT(relative_max_error(other, expected), 1e-3);
  }
}

TEST(LcmUNet, NamesAMisShapedTimestepCond) {
  auto config = UNetConfig::from_json(read_json(fast_fixture_dir() / "tiny-lcm/diffusers/unet/config.json"));
  UNet2DConditionModel unet(config);
  torch::NoGradGuard no_grad;
  const auto x = at::zeros({1, 4, 8, 8});
  const auto context = at::zeros({1, 77, config.cross_attention_dim});
  try {
    unet->forward(x, at::tensor({999.0f}), context, nullptr, at::zeros({1, 128}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("timestep_cond has shape [1, 128], expected [1, 256]"), std::string::npos) << e.what();
  }
  // A UNet without the projection refuses one.
  config.time_cond_proj_dim = 0;
  UNet2DConditionModel plain(config);
  EXPECT_THROW(plain->forward(x, at::tensor({999.0f}), context, nullptr, at::zeros({1, 256})), Error);
}

TEST(TaesdConfig, OriginalFilesGiveTheDiffusersConfig) {
  const auto expected = TinyAutoencoderConfig::from_json(read_json(fast_fixture_dir() / "taesd/diffusers/config.json"));
  const auto files = io::load_taesd_files(fast_fixture_dir() / "taesd/taesd_decoder.safetensors", at::kFloat);
  EXPECT_TRUE(files.config.is_null());
  EXPECT_EQ(files.tensors.size(), 134u);  // 67 per half
  const auto inferred = TinyAutoencoderConfig::infer(files.tensors, files.source);
  EXPECT_EQ(inferred.num_encoder_blocks, expected.num_encoder_blocks);
  EXPECT_EQ(inferred.num_decoder_blocks, (std::vector<int>{3, 3, 3, 1}));
  EXPECT_EQ(inferred.encoder_block_out_channels, (std::vector<int>{16, 16, 16, 16}));
  EXPECT_EQ(inferred.decoder_block_out_channels, expected.decoder_block_out_channels);
  EXPECT_EQ(inferred.latent_channels, 4);
  EXPECT_EQ(inferred.downscale_factor(), 8);
  // taesd.py's decoder index 1 is diffusers' decoder.layers.0; the encoder keeps its indices.
  EXPECT_EQ(files.file_names.at("decoder.layers.0.weight"), "taesd_decoder.safetensors: 1.weight");
  EXPECT_EQ(files.file_names.at("encoder.layers.14.bias"), "taesd_encoder.safetensors: 14.bias");
}

TEST(Taesd, DecodeMatchesDiffusersFromEitherLayout) {
  torch::NoGradGuard no_grad;
  const auto cases = manifest().at("taesd").at("decode");
  ASSERT_EQ(cases.size(), 3u);
  for (const auto& path : taesd_forms()) {
    auto taesd = load_taesd(path);
    for (const auto& ref : cases) {
      const auto latent = read_reference(refs() / ref.at("input_latent").get<std::string>());
      const auto expected = read_reference(refs() / ref.at("output").get<std::string>());
      const auto out = taesd->decode(latent);
      ASSERT_EQ(out.sizes(), expected.sizes());
      const double error = relative_max_error(out, expected);
      std::printf("taesd decode %s from %s: %.2e\n", ref.at("id").get<std::string>().c_str(),
                  path.filename().c_str(), error);
      EXPECT_LT(error, kComponentTolerance) << path;
    }
  }
}

TEST(Taesd, EncodeMatchesDiffusersFromEitherLayout) {
  torch::NoGradGuard no_grad;
  const auto cases = manifest().at("taesd").at("encode");
  ASSERT_EQ(cases.size(), 2u);
  for (const auto& path : taesd_forms()) {
    auto taesd = load_taesd(path);
    for (const auto& ref : cases) {
      const auto image = read_reference(refs() / ref.at("input_image").get<std::string>());
      const auto expected = read_reference(refs() / ref.at("latents").get<std::string>());
      const auto out = taesd->encode(image);
      ASSERT_EQ(out.sizes(), expected.sizes());
      const double error = relative_max_error(out, expected);
      std::printf("taesd encode %s from %s: %.2e\n", ref.at("id").get<std::string>().c_str(),
                  path.filename().c_str(), error);
      EXPECT_LT(error, kComponentTolerance) << path;
    }
  }
}

class TaesdFolder : public test::TempDirTest {};

TEST_F(TaesdFolder, DecoderAloneDecodesAndRefusesToEncode) {
  fs::copy_file(fast_fixture_dir() / "taesd/taesd_decoder.safetensors", dir_ / "taesd_decoder.safetensors");
  auto taesd = load_taesd(dir_ / "taesd_decoder.safetensors");
  EXPECT_FALSE(taesd->encoder);
  try {
    taesd->encode(at::zeros({1, 3, 16, 16}));
    FAIL() << "expected an error";
  } catch (const InvalidParameter& e) {
    EXPECT_EQ(e.parameter(), "vae");
    EXPECT_NE(std::string(e.what()).find("no encoder"), std::string::npos) << e.what();
  }
  // The encoder file alone is the wrong half.
  try {
    io::load_taesd_files(fast_fixture_dir() / "taesd/taesd_encoder.safetensors", at::kFloat);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a TAESD encoder alone; give the decoder"), std::string::npos) << e.what();
  }
}

TEST(Taesd, NamesTheTensorsOfAWrongShapeFile) {
  // A 16-channel TAESD's tensors against a 64-channel (the released size) module.
  const auto files = io::load_taesd_files(fast_fixture_dir() / "taesd/taesd_decoder.safetensors", at::kFloat);
  TinyAutoencoder released(TinyAutoencoderConfig{});
  try {
    load_weights(*released, files.tensors, {files.source, files.file_names, {}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("'taesd_encoder.safetensors: 0.weight' has shape [16,3,3,3], expected [64,3,3,3]"),
              std::string::npos)
        << message;
  }
  // A file that is not TAESD at all: the SD VAE's.
  try {
    io::load_taesd_files(fixtures_dir() / "tiny-sd1/diffusers/vae/diffusion_pytorch_model.safetensors", at::kFloat);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is not a TAESD layer"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace diffuse::models
