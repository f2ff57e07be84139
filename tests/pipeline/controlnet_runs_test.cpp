// ControlNet runs against diffusers' StableDiffusion(XL)ControlNet(Img2Img)Pipeline, from the seed
// alone, for every run of ../shared/fixtures/controlnet: one and two units, weight, start/end,
// guess mode, img2img, SDXL; SD 1.x nets both as lllyasviel's single files and as diffusers
// folders. Tolerances as every golden run's (golden_run.h): final latents within 1e-3 of the
// reference's largest magnitude, the 8-bit image within 1 level (under 0.2 on average).
#include <gtest/gtest.h>

#include <cmath>

#include "image/png_file.h"
#include "models/kernel_options.h"
#include "pipeline/control.h"
#include "pipeline/generation.h"
#include "pipeline/golden_run.h"
#include "support/fixtures.h"
#include "util/error.h"

namespace diffuse::pipeline {
namespace {

namespace fs = std::filesystem;
using test::fixtures_dir;
using test::read_json;

fs::path controlnet_dir() { return fixtures_dir() / "controlnet"; }
fs::path controlnet_refs() { return controlnet_dir() / "refs"; }
nlohmann::json controlnet_manifest() { return read_json(controlnet_dir() / "manifest.json"); }

struct ControlRunCase {
  std::string run_id;
  bool single_file;  // the nets as lllyasviel's single files where they have one
};

std::vector<ControlRunCase> control_run_cases() {
  std::vector<ControlRunCase> cases;
  const auto manifest = controlnet_manifest();
  for (const auto& run : manifest.at("runs")) {
    bool any_single = false, all_folders = true;
    for (const auto& net : run.at("controlnets")) {
      any_single = any_single || !net.at("single_file").is_null();
      all_folders = all_folders && !net.at("diffusers_dir").is_null();
    }
    const auto id = run.at("id").get<std::string>();
    if (all_folders) cases.push_back({id, false});
    if (any_single) cases.push_back({id, true});
  }
  return cases;
}

std::string control_case_name(const ::testing::TestParamInfo<ControlRunCase>& info) {
  std::string name = info.param.run_id + (info.param.single_file ? "_single" : "_diffusers");
  for (auto& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

nlohmann::json control_run(const std::string& id) {
  const auto manifest = controlnet_manifest();
  for (const auto& run : manifest.at("runs")) {
    if (run.at("id") == id) return run;
  }
  throw std::runtime_error("no run " + id);
}

StableDiffusionModel& control_base_model(const std::string& name) {
  static std::map<std::string, std::unique_ptr<StableDiffusionModel>> cache;
  auto& slot = cache[name];
  if (!slot) {
    const auto dir = controlnet_refs() / controlnet_manifest().at("models").at(name).at("model_dir").get<std::string>();
    slot = std::make_unique<StableDiffusionModel>(StableDiffusionModel::load(dir));
  }
  return *slot;
}

GenerationRequest control_request(const nlohmann::json& run, bool single_file) {
  auto request = request_of(run, controlnet_refs());
  for (const auto& net : run.at("controlnets")) {
    ControlUnit unit;
    const bool file = single_file ? !net.at("single_file").is_null() : net.at("diffusers_dir").is_null();
    unit.model = (controlnet_refs() / net.at(file ? "single_file" : "diffusers_dir").get<std::string>()).string();
    unit.image = image::read_png(controlnet_refs() / net.at("image").get<std::string>()).pixels;
    unit.weight = net.at("conditioning_scale").get<double>();
    unit.start = net.at("control_guidance_start").get<double>();
    unit.end = net.at("control_guidance_end").get<double>();
    request.controls.push_back(unit);
  }
  request.control_guess_mode = run.at("guess_mode").get<bool>();
  return request;
}

class ControlNetRuns : public ::testing::TestWithParam<ControlRunCase> {};

TEST_P(ControlNetRuns, MatchesDiffusersFromSeed) {
  const auto run = control_run(GetParam().run_id);
  auto& model = control_base_model(run.at("model").get<std::string>());
  const auto request = resolve(control_request(run, GetParam().single_file), model);
  const auto result = generate_image(model, request);
  const auto compared = compare_with_reference(result.latents, result.pixels, run, controlnet_refs());
  std::printf("%s %s: latents %.2e, image max %d mean %.3f levels\n", GetParam().run_id.c_str(),
              GetParam().single_file ? "single-file" : "diffusers", compared.latent_error, compared.max_levels,
              compared.mean_levels);
  EXPECT_LT(compared.latent_error, kLatentTolerance);
  EXPECT_LE(compared.max_levels, kImageLevels);
  EXPECT_LT(compared.mean_levels, kImageMeanLevels);
  EXPECT_NE(result.parameters.find("ControlNet 0: \"Module: none, Model: "), std::string::npos) << result.parameters;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ControlNetRuns, ::testing::ValuesIn(control_run_cases()), control_case_name);

// The per-step keep and effective scale of every run, as diffusers computed them.
TEST(ControlNetSchedule, KeepAndScalesAreDiffusers) {
  const auto manifest = controlnet_manifest();
  for (const auto& run : manifest.at("runs")) {
    const auto keep = run.at("controlnet_keep").get<std::vector<std::vector<double>>>();
    const auto scales = run.at("effective_scales").get<std::vector<std::vector<double>>>();
    const int steps = static_cast<int>(keep.size());
    for (size_t u = 0; u < run.at("controlnets").size(); ++u) {
      const auto& net = run.at("controlnets")[u];
      ResolvedControlUnit unit;
      unit.weight = net.at("conditioning_scale").get<double>();
      unit.start = net.at("control_guidance_start").get<double>();
      unit.end = net.at("control_guidance_end").get<double>();
      for (int i = 0; i < steps; ++i) {
        EXPECT_EQ(unit.keep(i, steps), keep[i][u]) << run.at("id") << " step " << i;
        EXPECT_DOUBLE_EQ(unit.weight * unit.keep(i, steps), scales[i][u]) << run.at("id") << " step " << i;
      }
    }
  }
}

// A net for SD 1.x on an SDXL model: named before any step runs.
TEST(ControlNetErrors, ANetForAnotherBaseModelIsNamed) {
  auto run = control_run("xl_cn_euler_6_s1.0");
  auto& model = control_base_model("tiny-sdxl");
  auto request = control_request(run, false);
  request.controls[0].model = (controlnet_dir() / "tiny-sd1-cn/tiny-sd1-cn.safetensors").string();
  const auto resolved = resolve(request, model);
  try {
    ControlNetRunner runner(model, resolved);
    FAIL() << "no error";
  } catch (const InvalidParameter& e) {
    EXPECT_EQ(e.parameter(), "control");
    EXPECT_NE(std::string(e.what()).find("unit 1: "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("is a ControlNet for an SD 1.x/2.x-style model (text width 32); "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("is SDXL (text width 64, size conditioning)"), std::string::npos) << e.what();
  }
}

TEST(ControlNetErrors, BadUnitsAreNamedBeforeLoading) {
  const auto run = control_run("cn_euler_8_s1.0");
  const auto expect_refused = [&](const std::function<void(GenerationRequest&)>& change, const std::string& parameter,
                                  const std::string& words) {
    auto request = control_request(run, true);
    change(request);
    try {
      validate(request);
      ADD_FAILURE() << "no error for " << words;
    } catch (const InvalidParameter& e) {
      EXPECT_EQ(e.parameter(), parameter);
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  expect_refused([](auto& r) { r.controls[0].weight = -0.5; }, "control", "unit 1: weight -0.5 must be");
  expect_refused([](auto& r) { r.controls[0].start = 0.8, r.controls[0].end = 0.2; }, "control", "unit 1: start 0.8 is after end 0.2");
  expect_refused([](auto& r) { r.controls[0].model = "no-such-net"; }, "control", "no ControlNet file or folder 'no-such-net'");
  expect_refused([](auto& r) { r.controls[0].image = at::zeros({4, 4}, at::kFloat); }, "control", "not an 8-bit picture");
  expect_refused([](auto& r) { r.control_mode = "loud"; }, "control_mode", "'loud' is not balanced, prompt or control");
  expect_refused([](auto& r) { r.control_resize = "squash"; }, "control_resize", "'squash' is not stretch, crop or fit");
}

TEST(ControlNetImages, ResizeModesKeepTheAspectAsTheySay) {
  // A 4x2 (w x h) picture: left half black, right half white, into 4x4.
  auto pixels = at::zeros({2, 4, 3}, at::kByte);
  pixels.slice(1, 2, 4).fill_(255);
  const auto stretched = resize_control_image(pixels, 4, 4, ControlResize::Stretch);
  EXPECT_EQ(stretched.sizes(), (at::IntArrayRef{4, 4, 3}));
  const auto cropped = resize_control_image(pixels, 4, 4, ControlResize::Crop);
  EXPECT_EQ(cropped.sizes(), (at::IntArrayRef{4, 4, 3}));
  // Fit: 4x2 inside 4x4, centred rows 1..2; the border's median (black and white rows: 127) fills.
  const auto fitted = resize_control_image(pixels, 4, 4, ControlResize::Fit);
  EXPECT_EQ(fitted.sizes(), (at::IntArrayRef{4, 4, 3}));
  EXPECT_TRUE(fitted.slice(0, 1, 3).equal(pixels));
  EXPECT_EQ(fitted[0][0][0].item<int>(), fitted[3][3][0].item<int>());
}

}  // namespace
}  // namespace diffuse::pipeline

namespace diffuse::pipeline {
namespace {

// The modes without references of their own, against the balanced residuals of the same net: which
// CFG half gets what, and the weights of each residual.
TEST(ControlNetModes, EachModeWeightsAndPlacesTheResidualsAsDocumented) {
  torch::NoGradGuard no_grad;
  const auto run = control_run("cn_euler_8_s1.0");
  auto& model = control_base_model("tiny-sd1");
  at::manual_seed(1);
  const auto input = at::randn({1, 4, 32, 32}, at::TensorOptions().dtype(at::kFloat)).repeat({2, 1, 1, 1});
  const auto residuals_for = [&](const std::string& mode, bool guess, double start = 0) {
    auto request = control_request(run, true);
    request.control_mode = mode;
    request.control_guess_mode = guess;
    request.controls[0].start = start;
    const auto resolved = resolve(request, model);
    ControlNetRunner runner(model, resolved);
    Conditioning conditioning;
    conditioning.context = at::cat({model.encode_prompt(""), model.encode_prompt("a photo of a cat")});
    return runner.residuals(0, 8, input, at::tensor({500.0}), conditioning, /*guided=*/true);
  };
  const auto balanced = residuals_for("balanced", false);
  const auto prompt = residuals_for("prompt", false);
  const auto control = residuals_for("control", false);
  const auto guess = residuals_for("balanced", true);
  EXPECT_FALSE(residuals_for("balanced", false, 0.5).has_value()) << "a unit before its start is not run";
  ASSERT_TRUE(balanced && prompt && control && guess);
  const size_t n = balanced->down.size() + 1;
  const auto logspace = models::guess_mode_scales(n, 1.0);
  const auto all = [&](const models::ControlResiduals& r) {
    auto list = r.down;
    list.push_back(r.mid);
    return list;
  };
  const auto b = all(*balanced), p = all(*prompt), c = all(*control), g = all(*guess);
  for (size_t k = 0; k < n; ++k) {
    const double soft = std::pow(0.825, static_cast<double>(n - 1 - k));
    EXPECT_TRUE(at::allclose(p[k], b[k] * soft, 1e-5, 1e-6)) << "prompt, residual " << k;
    EXPECT_TRUE(at::equal(c[k][0], at::zeros_like(c[k][0]))) << "control, unconditional half, residual " << k;
    EXPECT_TRUE(at::allclose(c[k][1], p[k][1], 1e-4, 1e-6)) << "control, conditional half, residual " << k;
    EXPECT_TRUE(at::equal(g[k][0], at::zeros_like(g[k][0]))) << "guess, unconditional half, residual " << k;
    EXPECT_TRUE(at::allclose(g[k][1], b[k][1] * logspace[k], 1e-4, 1e-6)) << "guess, conditional half, residual " << k;
  }
}

// bf16 (where the CPU multiplies it natively) draws diffusers' fp32 picture closely: 30 dB, the bar
// the plain runs meet.
TEST(ControlNetBf16, DrawsTheReferenceClosely) {
  if (!models::bf16_supported()) GTEST_SKIP() << "bf16 is refused below CPU class avx512";
  const auto run = control_run("cn_euler_8_s1.0");
  LoadOptions load;
  load.dtype = at::kBFloat16;
  const auto dir = controlnet_refs() / controlnet_manifest().at("models").at("tiny-sd1").at("model_dir").get<std::string>();
  auto model = StableDiffusionModel::load(dir, load);
  const auto pixels = generate_image(model, resolve(control_request(run, true), model)).pixels;
  const auto expected = image::read_png(controlnet_refs() / run.at("png").get<std::string>()).pixels;
  const double mse = (pixels.to(at::kDouble) - expected.to(at::kDouble)).pow(2).mean().item<double>();
  const double db = 10.0 * std::log10(255.0 * 255.0 / std::max(mse, 1e-12));
  std::printf("cn_euler_8_s1.0 bf16 vs diffusers fp32: PSNR %.1f dB\n", db);
  EXPECT_GT(db, 30.0);
}

}  // namespace
}  // namespace diffuse::pipeline
