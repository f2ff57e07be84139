// The hires fix against AUTOMATIC1111's rule as ../shared/fixtures/hires records it (diffusers on
// tiny-sd1, from the seed alone): the first pass's latents, the upscale (latent bilinear and nearest,
// Lanczos in pixel space after the truncating 8-bit step), the second pass's stretched schedule and
// the steps it runs, its final latents, image and PNG. Tolerances as the core golden runs
// (pipeline/golden_run.h).
#include <gtest/gtest.h>

#include "image/png_file.h"
#include "image/resize.h"
#include "pipeline/generation.h"
#include "pipeline/golden_run.h"
#include "pipeline/hires_fix.h"
#include "pipeline/upscale.h"
#include "support/fixtures.h"
#include "util/error.h"

namespace diffuse::pipeline {
namespace {

namespace fs = std::filesystem;
using test::read_reference;

fs::path hires_fixture_dir() { return test::fixtures_dir() / "hires"; }
fs::path hires_refs() { return hires_fixture_dir() / "refs"; }
const nlohmann::json& hires_manifest() {
  static const auto loaded = test::read_json(hires_fixture_dir() / "manifest.json");
  return loaded;
}

StableDiffusionModel& hires_model() {
  static auto model = StableDiffusionModel::load(test::fixtures_dir() / "tiny-sd1/diffusers");
  return model;
}

const nlohmann::json& hires_run(const std::string& id) {
  for (const auto& run : hires_manifest().at("runs")) {
    if (run.at("id") == id) return run;
  }
  throw std::runtime_error("no hires run " + id);
}

std::vector<std::string> hires_run_ids() {
  std::vector<std::string> ids;
  for (const auto& run : hires_manifest().at("runs")) ids.push_back(run.at("id").get<std::string>());
  return ids;
}

// The request the run's `cli` entry describes.
GenerationRequest hires_request_of(const nlohmann::json& run) {
  GenerationRequest request;
  request.prompt = run.at("prompt").get<std::string>();
  if (!run.at("negative_prompt").is_null()) request.negative_prompt = run.at("negative_prompt").get<std::string>();
  request.cfg_scale = run.at("guidance_scale").get<double>();
  request.seed = run.at("seed").get<uint64_t>();
  request.width = run.at("width").get<int>();
  request.height = run.at("height").get<int>();
  request.steps = run.at("first_pass").at("num_inference_steps").get<int>();
  const auto& cli = run.at("cli");
  request.sampler = cli.at("sampler").get<std::string>();
  request.eta = cli.at("eta").get<double>();
  HiresFixRequest hires;
  hires.scale = cli.at("hires_scale").get<double>();
  hires.upscaler = cli.at("hires_upscaler").get<std::string>();
  hires.steps = cli.at("hires_steps").get<int>();
  hires.denoise = cli.at("hires_denoise").get<double>();
  request.hires = hires;
  return request;
}

double max_levels_between(const at::Tensor& made, const at::Tensor& expected) {
  return (made.to(at::kShort) - expected.to(at::kShort)).abs().max().item<double>();
}

std::string hires_case_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (auto& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

class HiresRuns : public ::testing::TestWithParam<std::string> {};

TEST_P(HiresRuns, MatchesAutomatic1111sRuleFromSeed) {
  const auto& run = hires_run(GetParam());
  const auto& first = run.at("first_pass");
  const auto& upscale = run.at("upscale");
  const auto& second = run.at("second_pass");
  auto& model = hires_model();
  const auto params = resolve(hires_request_of(run), model);
  ASSERT_TRUE(params.hires);
  const auto& hires = *params.hires;
  EXPECT_EQ(hires.width, upscale.at("target_width").get<int>());
  EXPECT_EQ(hires.height, upscale.at("target_height").get<int>());
  EXPECT_EQ(hires.sampler.steps, second.at("a1111_schedule_steps").get<int>());
  EXPECT_EQ(hires.steps, second.at("hr_steps").get<int>());

  // The second pass's timesteps: the last hires steps of its stretched schedule.
  const auto schedule = sampling::make_schedule(model.scheduler, hires.sampler);
  EXPECT_EQ(schedule.timesteps, second.at("scheduler_info").at("timesteps").get<std::vector<double>>());
  const std::vector<double> run_timesteps(schedule.timesteps.begin() + hires.first_step, schedule.timesteps.end());
  EXPECT_EQ(run_timesteps, second.at("timesteps_run").get<std::vector<double>>());

  // One Denoise phase over both passes; the first pass's latents are those after its last step.
  const int first_steps = first.at("unet_calls").get<int>();
  const int total_steps = first_steps + second.at("unet_calls").get<int>();
  at::Tensor first_latents;
  int denoise_reports = 0;
  const ProgressCallback watch = [&](const Progress& p) {
    if (p.phase != Phase::Denoise || p.done == 0) return true;
    ++denoise_reports;
    EXPECT_EQ(p.total, total_steps);
    if (p.done == first_steps && p.latents != nullptr) first_latents = p.latents->clone();
    return true;
  };
  const auto result = generate_image(model, params, 0, watch);
  EXPECT_EQ(denoise_reports, total_steps);
  ASSERT_TRUE(first_latents.defined());
  const double first_error = test::relative_max_error(first_latents, read_reference(hires_refs() / first.at("final_latents")));
  EXPECT_LT(first_error, kLatentTolerance);

  nlohmann::json reference{{"final_latents", second.at("final_latents")}, {"image", second.at("image")}};
  const auto compared = compare_with_reference(result.latents, result.pixels, reference, hires_refs());
  const auto png = image::read_png(hires_refs() / second.at("png").get<std::string>()).pixels;
  ASSERT_EQ(result.pixels.sizes(), png.sizes());
  const double png_levels = max_levels_between(result.pixels, png);
  std::printf("%s: first pass %.2e, final latents %.2e, image max %d mean %.3f levels, PNG max %.0f levels\n",
              GetParam().c_str(), first_error, compared.latent_error, compared.max_levels, compared.mean_levels, png_levels);
  EXPECT_LT(compared.latent_error, kLatentTolerance);
  EXPECT_LE(compared.max_levels, kImageLevels);
  EXPECT_LT(compared.mean_levels, kImageMeanLevels);
  EXPECT_LE(png_levels, kImageLevels);
}

INSTANTIATE_TEST_SUITE_P(HiresFixtures, HiresRuns, ::testing::ValuesIn(hires_run_ids()), hires_case_name);

TEST(HiresUpscale, LatentModesInterpolateAsTorchDoes) {
  int checked = 0;
  for (const auto& run : hires_manifest().at("runs")) {
    const auto& upscale = run.at("upscale");
    if (!upscale.contains("upscaled_latents")) continue;
    const auto params = validate(hires_request_of(run));
    const auto latents = read_reference(hires_refs() / run.at("first_pass").at("final_latents"));
    const auto size = upscale.at("latent_size").get<std::vector<int64_t>>();
    const auto made = upscale_latents(latents, params.hires->upscaler, size.at(0), size.at(1));
    EXPECT_LT(test::relative_max_error(made, read_reference(hires_refs() / upscale.at("upscaled_latents"))), 1e-6)
        << run.at("id");
    ++checked;
  }
  EXPECT_EQ(checked, 2);  // bilinear and nearest
}

TEST(HiresUpscale, ImageModesTruncateTheDecodedFirstPassThenResize) {
  int checked = 0;
  for (const auto& run : hires_manifest().at("runs")) {
    const auto& upscale = run.at("upscale");
    if (!upscale.contains("lowres_uint8_png")) continue;
    const auto latents = read_reference(hires_refs() / run.at("first_pass").at("final_latents"));
    const auto decoded = hires_model().decode_latents(latents);
    const auto lowres = truncated_bytes(decoded);
    const auto expected_lowres = image::read_png(hires_refs() / upscale.at("lowres_uint8_png").get<std::string>()).pixels;
    ASSERT_EQ(lowres.sizes(), expected_lowres.sizes());
    EXPECT_LE(max_levels_between(lowres, expected_lowres), kImageLevels);
    // From the reference's own bytes, Pillow's Lanczos is exact.
    const auto upscaled = image::resize_like_pillow(expected_lowres, upscale.at("target_width").get<int>(),
                                                    upscale.at("target_height").get<int>(), image::ResampleFilter::Lanczos);
    EXPECT_TRUE(upscaled.equal(image::read_png(hires_refs() / upscale.at("upscaled_png").get<std::string>()).pixels));
    ++checked;
  }
  EXPECT_EQ(checked, 1);
}

// An ESRGAN file (the x2 fixture net) at scale 1.5: one network pass to 128 pixels, then Lanczos
// down to 96; the image the second pass starts from is exactly that composition.
TEST(HiresUpscale, NetworkFilesRunUntilTheSizeIsReachedThenLanczos) {
  const auto& run = hires_run("hires_lanczos_x2_euler");
  auto request = hires_request_of(run);
  const auto net_file = test::fixtures_dir() / "upscale/models/rrdbnet_x2.safetensors";
  request.hires->upscaler = net_file.string();
  request.hires->scale = 1.5;
  auto& model = hires_model();
  const auto params = resolve(request, model);
  ASSERT_EQ(params.hires->upscaler, HiresUpscaler::Neural);
  const auto first_latents = read_reference(hires_refs() / run.at("first_pass").at("final_latents"));
  const auto made = upscale_first_pass_image(model, params, 0, first_latents);

  auto net = NeuralUpscaler::load(net_file);
  UpscaleOptions options;
  options.tile = 192;
  const auto lowres = truncated_bytes(model.decode_latents(first_latents));
  const auto enlarged = net.upscale_pixels(lowres, options);
  ASSERT_EQ(enlarged.size(0), 128);
  const auto expected = image::resize_like_pillow(enlarged, 96, 96, image::ResampleFilter::Lanczos);
  EXPECT_TRUE(made.equal(expected));
  EXPECT_NE(a1111_parameters(params, 1, "tiny").find("Hires upscaler: rrdbnet_x2"), std::string::npos);

  // Pixel-space Lanczos from the first pass's latents reaches the fixture's upscaled image.
  const auto lanczos = upscale_first_pass_image(model, resolve(hires_request_of(run), model), 0, first_latents);
  const auto fixture = image::read_png(hires_refs() / run.at("upscale").at("upscaled_png").get<std::string>()).pixels;
  EXPECT_LE(max_levels_between(lanczos, fixture), kImageLevels);
}

TEST(HiresParameters, AreWrittenAsAutomatic1111WritesThem) {
  const auto& run = hires_run("hires_latent_x2_euler");
  const auto params = validate(hires_request_of(run));
  const std::string text = a1111_parameters(params, 1, "tiny");
  EXPECT_NE(text.find(", Denoising strength: 0.55, Hires upscale: 2, Hires steps: 6, Hires upscaler: Latent"), std::string::npos)
      << text;
  auto request = hires_request_of(hires_run("hires_latent-nearest_x1.5_dpmpp_2m"));
  request.hires->sampler = "euler";
  request.hires->prompt = "a cat, closer";
  const std::string nearest = a1111_parameters(validate(request), 1, "tiny");
  EXPECT_NE(nearest.find(", Denoising strength: 0.7, Hires sampler: Euler, Hires prompt: \"a cat, closer\", "
                         "Hires upscale: 1.5, Hires steps: 5, Hires upscaler: Latent (nearest)"),
            std::string::npos)
      << nearest;
}

void expect_hires_refused(const GenerationRequest& request, const std::string& parameter, const std::string& problem) {
  try {
    resolve(request, hires_model());
    FAIL() << "expected " << parameter << " to be refused";
  } catch (const InvalidParameter& e) {
    EXPECT_EQ(e.parameter(), parameter) << e.what();
    EXPECT_NE(std::string(e.what()).find(problem), std::string::npos) << e.what();
  }
}

TEST(HiresValidation, NamesTheParameter) {
  const auto base = hires_request_of(hires_run("hires_latent_x2_euler"));
  auto request = base;
  request.hires->denoise = 0;
  expect_hires_refused(request, "hires_denoise", "must be more than 0 and at most 1");
  request = base;
  request.hires->upscaler = "bilinear-ish";
  expect_hires_refused(request, "hires_upscaler", "is not one of latent, latent-nearest");
  request = base;
  request.hires->scale = 1.1;  // 64 x 1.1 = 70 pixels, off the latent grid
  expect_hires_refused(request, "hires_scale", "gives 70x70");
  request = base;
  request.hires->scale = 0.5;
  expect_hires_refused(request, "hires_scale", "is outside 1..8");
  request = base;
  request.hires->steps = -1;
  expect_hires_refused(request, "hires_steps", "must be 0");
  request = base;
  request.hires->sampler = "no-such-sampler";
  expect_hires_refused(request, "hires_sampler", "no-such-sampler");
  request = base;
  request.hires->width = 96;  // the height follows the first pass's aspect ratio
  const auto sized = resolve(request, hires_model());
  EXPECT_EQ(sized.hires->height, 96);
  EXPECT_NE(a1111_parameters(sized, 1, "tiny").find("Hires resize: 96x0"), std::string::npos);
}

}  // namespace
}  // namespace diffuse::pipeline
