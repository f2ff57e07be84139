// Few-step runs against diffusers from the seed alone (../shared/fixtures/tiny-fast): LCM models
// with their guidance embedding (every step's denoised latents, the final latents, the image), and
// guidance-free SD-Turbo-style runs (euler_a with trailing spacing, LCMScheduler) at CFG 0 and 1 on
// tiny-sd1 and tiny-sd2v in both file layouts, where one UNet batch runs per step and a negative
// prompt changes nothing. Tolerances as the core golden runs (pipeline/golden_run.h).
#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "models/unet.h"
#include "pipeline/generation.h"
#include "pipeline/golden_run.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace diffuse::pipeline {
namespace {

namespace fs = std::filesystem;
using test::fast_fixture_dir;
using test::fixtures_dir;
using test::read_json;
using test::read_reference;

fs::path refs() { return fast_fixture_dir() / "refs"; }
const nlohmann::json& manifest() {
  static const auto loaded = read_json(fast_fixture_dir() / "manifest.json");
  return loaded;
}

struct FastCase {
  std::string run_id;
  bool single_file;
};

void PrintTo(const FastCase& c, std::ostream* out) { *out << c.run_id << (c.single_file ? " single-file" : " diffusers"); }

std::string case_name(const ::testing::TestParamInfo<FastCase>& info) {
  std::string name = info.param.run_id + (info.param.single_file ? "_single" : "_diffusers");
  for (auto& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

std::vector<FastCase> fast_runs() {
  std::vector<FastCase> cases;
  for (const auto& run : manifest().at("runs")) {
    const auto model = manifest().at("models").at(run.at("model").get<std::string>());
    cases.push_back({run.at("id").get<std::string>(), false});
    if (!model.at("single_file").is_null()) cases.push_back({run.at("id").get<std::string>(), true});
  }
  return cases;
}

const nlohmann::json& run_of(const std::string& id) {
  for (const auto& run : manifest().at("runs")) {
    if (run.at("id") == id) return run;
  }
  throw std::runtime_error("no run " + id);
}

StableDiffusionModel& fast_model(const std::string& name, bool single_file) {
  static std::map<std::pair<std::string, bool>, std::unique_ptr<StableDiffusionModel>> cache;
  auto& slot = cache[{name, single_file}];
  if (!slot) {
    const auto& entry = manifest().at("models").at(name);
    LoadOptions options;
    if (single_file) options.tokenizer = test::shared_dir() / "clip";
    const auto path = refs() / entry.at(single_file ? "single_file" : "model_dir").get<std::string>();
    slot = std::make_unique<StableDiffusionModel>(StableDiffusionModel::load(path.lexically_normal(), options));
  }
  return *slot;
}

GenerationRequest fast_request(const nlohmann::json& run) {
  auto request = request_of(run, refs());
  if (run.at("cli").contains("guidance_embedding")) request.guidance_embedding = run.at("cli").at("guidance_embedding").get<bool>();
  return request;
}

class FastRuns : public ::testing::TestWithParam<FastCase> {};

TEST_P(FastRuns, MatchesDiffusersFromSeed) {
  const auto& run = run_of(GetParam().run_id);
  auto& model = fast_model(run.at("model").get<std::string>(), GetParam().single_file);
  const auto params = resolve(fast_request(run), model);
  EXPECT_EQ(model.tokenizer.encode_padded(params.prompt), run.at("prompt_input_ids").get<std::vector<int64_t>>());
  EXPECT_FALSE(params.guided()) << "one UNet batch per step, as diffusers' unet_batch_sizes "
                                << run.at("unet_batch_sizes").dump();
  EXPECT_EQ(params.guidance_embedding.value(), run.at("cli").contains("guidance_embedding"));

  std::vector<at::Tensor> denoised;
  const ProgressCallback keep_denoised = [&](const Progress& p) {
    if (p.phase == Phase::Denoise && p.denoised != nullptr) denoised.push_back(p.denoised->clone());
    return true;
  };
  const auto result = generate_image(model, params, 0, keep_denoised);
  const auto compared = compare_with_reference(result.latents, result.pixels, run, refs());
  std::printf("%s %s: latents %.2e, image max %d mean %.3f levels\n", GetParam().run_id.c_str(),
              GetParam().single_file ? "single-file" : "diffusers", compared.latent_error, compared.max_levels,
              compared.mean_levels);
  EXPECT_LT(compared.latent_error, kLatentTolerance);
  EXPECT_LE(compared.max_levels, kImageLevels);
  EXPECT_LT(compared.mean_levels, kImageMeanLevels);

  ASSERT_EQ(denoised.size(), static_cast<size_t>(run.at("num_inference_steps").get<int>()));
  if (run.contains("step_denoised")) {
    const auto steps = run.at("step_denoised");
    ASSERT_EQ(steps.size(), denoised.size());
    for (size_t i = 0; i < steps.size(); ++i) {
      const double error = test::relative_max_error(denoised[i], read_reference(refs() / steps[i].get<std::string>()));
      EXPECT_LT(error, kLatentTolerance) << "step " << i;
    }
  }
  if (run.contains("w_embedding")) {
    const auto expected = read_reference(refs() / run.at("w_embedding").get<std::string>());
    EXPECT_LT((models::guidance_scale_embedding(params.cfg_scale, 256) - expected).abs().max().item<double>(), 1e-5);
  }

  // The PNG's parameters say no CFG ran, and carry no negative prompt the image never read.
  EXPECT_NE(result.parameters.find(params.guidance_embedding.value() ? "Guidance: LCM embedding (one UNet pass per step)"
                                                                      : "Guidance: none (one UNet pass per step"),
            std::string::npos)
      << result.parameters;
  EXPECT_EQ(result.parameters.find("Negative prompt:"), std::string::npos) << result.parameters;

  // A negative prompt changes nothing: the same latents, bit for bit, without it.
  if (!params.negative_prompt.empty()) {
    EXPECT_NE(result.parameters.find("negative prompt unused"), std::string::npos) << result.parameters;
    ASSERT_FALSE(params.warnings.empty());
    EXPECT_NE(params.warnings.back().find("the negative prompt is ignored"), std::string::npos);
    auto without = fast_request(run);
    without.negative_prompt.clear();
    const auto plain = generate_image(model, resolve(without, model));
    EXPECT_TRUE(plain.latents.equal(result.latents));
  }
}

INSTANTIATE_TEST_SUITE_P(TinyFast, FastRuns, ::testing::ValuesIn(fast_runs()), case_name);

TEST(FastRunsCoverage, EveryLcmAndTurboRunIsTested) {
  int lcm = 0, turbo = 0;
  for (const auto& c : fast_runs()) (c.run_id.rfind("lcm_", 0) == 0 ? lcm : turbo) += 1;
  EXPECT_EQ(lcm, 8);         // 1, 2, 4, 6 steps at guidance 8.0 and 1.5, diffusers layout only
  EXPECT_EQ(turbo, 2 * 14);  // 7 runs per model, both layouts
}

TEST(GuidanceEmbedding, IsRefusedForAModelWithoutOne) {
  auto& model = fast_model("tiny-sd1", false);
  GenerationRequest request;
  request.prompt = "a cat";
  request.sampler = "lcm";
  request.steps = 4;
  request.guidance_embedding = true;
  try {
    resolve(request, model);
    FAIL() << "expected an error";
  } catch (const InvalidParameter& e) {
    EXPECT_EQ(e.parameter(), "guidance_embedding");
    EXPECT_NE(std::string(e.what()).find("only LCM-distilled UNets (time_cond_proj_dim in their config) take a guidance "
                                         "embedding; diffusers has none"),
              std::string::npos)
        << e.what();
  }
  // And an LCM model cannot run without it.
  auto& lcm = fast_model("tiny-lcm", false);
  request.guidance_embedding = false;
  try {
    resolve(request, lcm);
    FAIL() << "expected an error";
  } catch (const InvalidParameter& e) {
    EXPECT_EQ(e.parameter(), "guidance_embedding");
    EXPECT_NE(std::string(e.what()).find("time_cond_proj_dim 256"), std::string::npos) << e.what();
  }
}

// --vae taesd:PATH: TAESD decodes the final latents (without 1/0.18215) and encodes img2img's image.
class TaesdPipeline : public test::TempDirTest {};

TEST_F(TaesdPipeline, DecodesTheFinalLatentsWithoutTheVaeScalingFactor) {
  LoadOptions options;
  options.taesd = fast_fixture_dir() / "taesd/taesd_decoder.safetensors";
  options.taesd_as_vae = true;
  auto model = StableDiffusionModel::load(fixtures_dir() / "tiny-sd1/diffusers", options);
  ASSERT_TRUE(model.decodes_with_taesd());
  EXPECT_EQ(model.vae_scale_factor(), 8);
  const auto& ref = manifest().at("taesd").at("decode").at(0);
  const auto latent = read_reference(refs() / ref.at("input_latent").get<std::string>());
  const auto expected = read_reference(refs() / ref.at("output").get<std::string>());
  EXPECT_LT(test::relative_max_error(model.decode_latents(latent), expected), 1e-4);
  const auto& encode = manifest().at("taesd").at("encode").at(0);
  const auto image = read_reference(refs() / encode.at("input_image").get<std::string>());
  EXPECT_LT(test::relative_max_error(model.encode_image(image, nullptr),
                                     read_reference(refs() / encode.at("latents").get<std::string>())),
            1e-4);

  GenerationRequest request;
  request.prompt = "a photo of a cat";
  request.steps = 1;
  request.cfg_scale = 0;
  request.sampler = "euler_a";
  request.timestep_spacing = "trailing";
  request.width = request.height = 64;
  const auto result = generate_image(model, resolve(request, model));
  EXPECT_EQ(result.latents.sizes(), (std::vector<int64_t>{1, 4, 8, 8}));  // TAESD's factor 8
  EXPECT_EQ(result.pixels.sizes(), (std::vector<int64_t>{64, 64, 3}));
}

// A TAESD whose latents are not the model's, and one whose tensors disagree with their own layout.
TEST_F(TaesdPipeline, NamesAWrongShapeFile) {
  auto file = io::SafetensorsFile::open(fast_fixture_dir() / "taesd/taesd_decoder.safetensors");
  std::map<std::string, at::Tensor> tensors;
  for (const auto& info : file.tensors()) tensors[info.name] = file.tensor(info.name, at::kFloat);
  auto eight_channels = tensors;
  eight_channels["1.weight"] = at::zeros({16, 8, 3, 3});
  io::write_safetensors(dir_ / "eight_decoder.safetensors", eight_channels);
  LoadOptions options;
  options.taesd = dir_ / "eight_decoder.safetensors";
  options.taesd_as_vae = true;
  try {
    StableDiffusionModel::load(fixtures_dir() / "tiny-sd1/diffusers", options);
    FAIL() << "expected an error";
  } catch (const InvalidParameter& e) {
    EXPECT_EQ(e.parameter(), "vae");
    EXPECT_NE(std::string(e.what()).find("works on 8-channel latents, this model's on 4"), std::string::npos) << e.what();
  }
  auto bad_block = tensors;
  bad_block["4.conv.2.weight"] = at::zeros({16, 16, 5, 5});
  io::write_safetensors(dir_ / "bad_decoder.safetensors", bad_block);
  options.taesd = dir_ / "bad_decoder.safetensors";
  try {
    StableDiffusionModel::load(fixtures_dir() / "tiny-sd1/diffusers", options);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'bad_decoder.safetensors: 4.conv.2.weight' has shape [16,16,5,5], expected "
                                         "[16,16,3,3]"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace diffuse::pipeline
