// The one validation point of a generation request: every bad value is refused once, by the name of
// its field, before and after a model is loaded; resolve() fills the model's defaults.
#include <gtest/gtest.h>

#include "pipeline/generation.h"
#include "pipeline/request.h"
#include "support/fixtures.h"
#include "util/error.h"

namespace diffuse::pipeline {
namespace {

struct Refusal {
  std::string parameter;
  std::string message;
};

template <typename Call>
Refusal refusal_of(Call call) {
  try {
    call();
  } catch (const InvalidParameter& error) {
    return {error.parameter(), error.what()};
  }
  return {"", ""};
}

StableDiffusionModel& tiny_sd1() {
  static auto model = StableDiffusionModel::load(test::fixtures_dir() / "tiny-sd1" / "diffusers");
  return model;
}

TEST(GenerationRequestValidate, NamesEveryBadValueByItsField) {
  const std::vector<std::pair<std::function<void(GenerationRequest&)>, Refusal>> cases = {
      {[](auto& r) { r.width = 100; }, {"width", "width: 100 is not a positive multiple of 8"}},
      {[](auto& r) { r.height = -64; }, {"height", "height: -64 is not a positive multiple of 8"}},
      {[](auto& r) { r.cfg_scale = -1; }, {"cfg_scale", "cfg_scale: -1 must be a finite number >= 0"}},
      {[](auto& r) { r.cfg_scale = std::nan(""); }, {"cfg_scale", "cfg_scale: nan must be a finite number >= 0"}},
      {[](auto& r) { r.batch_count = 0; }, {"batch_count", "batch_count: 0 must be at least 1"}},
      {[](auto& r) { r.steps = 0; }, {"steps", "steps: must be at least 1, got 0"}},
      {[](auto& r) { r.sampler = "k_euler"; }, {"sampler", ""}},
      {[](auto& r) { r.schedule = "cosine"; },
       {"schedule", "schedule: 'cosine' is not one of default, karras, exponential, sgm_uniform"}},
      {[](auto& r) { r.timestep_spacing = "uniform"; },
       {"timestep_spacing", "timestep_spacing: 'uniform' is not one of leading, trailing, linspace"}},
      {[](auto& r) { r.prediction = "sample"; }, {"prediction", "prediction: 'sample' is not one of epsilon, v_prediction"}},
      {[](auto& r) { r.eta = 0.5; }, {"eta", "eta: applies only to samplers ddim, tcd, not to 'euler'"}},
      {[](auto& r) { r.sampler = "ddim", r.schedule = "karras"; },
       {"schedule", "schedule: 'karras' is not available for sampler 'ddim'; use 'default'"}},
      {[](auto& r) { r.clip_skip = 0; }, {"clip_skip", "clip_skip: 0 must be at least 1 (1: the last layer)"}},
      {[](auto& r) { r.original_size = ImageSize{0, 64}; },
       {"original_size", "original_size: 0,64 must be two positive numbers, width,height"}},
      {[](auto& r) { r.target_size = ImageSize{64, -8}; },
       {"target_size", "target_size: 64,-8 must be two positive numbers, width,height"}},
      {[](auto& r) { r.crop_coords = CropOffset{-1, 0}; }, {"crop_coords", "crop_coords: -1,0 must be 0 or more, x,y"}},
      {[](auto& r) { r.seed = UINT64_MAX, r.batch_count = 2; },
       {"seed", "seed: the batch's seeds (18446744073709551615 + 1) run past 2^64 - 1"}},
  };
  for (const auto& [spoil, expected] : cases) {
    GenerationRequest request;
    request.prompt = "a cat";
    spoil(request);
    const auto refused = refusal_of([&] { validate(request); });
    EXPECT_EQ(refused.parameter, expected.parameter) << refused.message;
    if (!expected.message.empty()) {
      EXPECT_EQ(refused.message, expected.message);
    }
  }
}

TEST(GenerationRequestValidate, ParsesTheSamplerOptionsOnce) {
  GenerationRequest request;
  request.sampler = "dpm++2m";
  request.schedule = "karras";
  request.timestep_spacing = "trailing";
  request.prediction = "v_prediction";
  request.steps = 12;
  request.seed = 7;
  request.batch_count = 3;
  const auto resolved = validate(request);
  EXPECT_EQ(resolved.sampler.sampler, "dpm++2m");
  EXPECT_EQ(resolved.sampler.schedule, sampling::SigmaSchedule::Karras);
  EXPECT_EQ(resolved.sampler.timestep_spacing, sampling::Spacing::Trailing);
  EXPECT_EQ(resolved.sampler.prediction, sampling::Prediction::VPrediction);
  EXPECT_EQ(resolved.sampler.steps, 12);
  EXPECT_EQ(resolved.width, 0);  // the model's, once resolved
  EXPECT_EQ(resolved.seed_of(2), 9u);
  EXPECT_FALSE(validate(GenerationRequest{}).sampler.timestep_spacing.has_value());  // the config's
}

TEST(GenerationRequestResolve, FillsTheModelsSizeAndChecksItsGrid) {
  auto& model = tiny_sd1();
  const int trained = model.default_image_size();
  const auto resolved = resolve(GenerationRequest{}, model);
  EXPECT_EQ(resolved.width, trained);
  EXPECT_EQ(resolved.height, trained);
  EXPECT_TRUE(resolved.warnings.empty());

  GenerationRequest many;
  many.steps = model.scheduler.num_train_timesteps;
  EXPECT_EQ(refusal_of([&] { resolve(many, model); }).parameter, "steps");
}

// The built-in model's VAE quarters the image and its UNet halves the latent twice: sides must be
// multiples of 16, which a multiple of 8 passes validate() without being. (Its own tokenizer is
// rebuilt by the CLI on first use; resolving needs none, so CLIP's stands in.)
TEST(GenerationRequestResolve, ChecksTheModelsLatentGrid) {
  LoadOptions options;
  options.tokenizer = test::shared_dir() / "clip";
  const auto model = StableDiffusionModel::load(DIFFUSE_BUILTIN_MODEL_DIR, options);
  const int grid = model.vae_scale_factor() << (model.unet->config.levels() - 1);
  ASSERT_EQ(grid, 16);
  GenerationRequest odd;
  odd.width = 72;
  odd.height = 64;
  EXPECT_NO_THROW(validate(odd));
  const auto refused = refusal_of([&] { resolve(odd, model); });
  EXPECT_EQ(refused.parameter, "width");
  EXPECT_EQ(refused.message, "width: 72 is not a positive multiple of 16");
  odd.width = 80;
  EXPECT_EQ(resolve(odd, model).width, 80);
}

TEST(GenerationRequestResolve, WarnsFarFromTheTrainingSize) {
  auto& model = tiny_sd1();
  const int trained = model.default_image_size();
  GenerationRequest large;
  large.width = large.height = trained * 4;
  const auto resolved = resolve(large, model);
  ASSERT_EQ(resolved.warnings.size(), 1u);
  const std::string size = std::to_string(trained * 4) + "x" + std::to_string(trained * 4);
  EXPECT_EQ(resolved.warnings[0], size + " is 16x the area the model was trained at (" + std::to_string(trained) + "x" +
                                      std::to_string(trained) +
                                      "): expect repeated or broken-up subjects, and steps that take far longer");
  GenerationRequest near;
  near.width = trained * 2;  // twice the area: still fine
  EXPECT_TRUE(resolve(near, model).warnings.empty());
}

TEST(GenerationRequestResolve, SizeConditioningAndClipSkipFollowTheModel) {
  auto& sd1 = tiny_sd1();
  GenerationRequest sized;
  sized.original_size = ImageSize{1024, 1024};
  EXPECT_EQ(refusal_of([&] { resolve(sized, sd1); }).message, "original_size: only SDXL models take size conditioning");
  GenerationRequest deep;
  deep.clip_skip = sd1.text_encoder_layers() + 1;
  EXPECT_EQ(refusal_of([&] { resolve(deep, sd1); }).message,
            "clip_skip: " + std::to_string(deep.clip_skip) + " is more than the text encoder's " +
                std::to_string(sd1.text_encoder_layers()) + " layers");
  deep.clip_skip = 2;
  EXPECT_NE(a1111_parameters(resolve(deep, sd1), 42, "m").find(", Clip skip: 2"), std::string::npos);

  const auto sdxl = StableDiffusionModel::load(test::fixtures_dir() / "tiny-sdxl" / "diffusers");
  ASSERT_TRUE(sdxl.is_sdxl());
  const auto defaults = resolve(GenerationRequest{}, sdxl);
  EXPECT_EQ(defaults.original_size, (ImageSize{64, 64}));  // the image's size, as diffusers
  EXPECT_EQ(defaults.target_size, (ImageSize{64, 64}));
  ASSERT_TRUE(defaults.crop_coords.has_value());
  EXPECT_EQ(defaults.crop_coords->x, 0);
  sized.crop_coords = CropOffset{16, 32};
  const auto given = resolve(sized, sdxl);
  EXPECT_EQ(given.original_size, (ImageSize{1024, 1024}));
  EXPECT_EQ(given.crop_coords->y, 32);
  EXPECT_EQ(given.target_size, (ImageSize{64, 64}));
}

TEST(GenerationBatch, OneImagePerSeedWithProgressAndCancel) {
  auto& model = tiny_sd1();
  GenerationRequest request;
  request.prompt = "a cat";
  request.steps = 2;
  request.seed = 5;
  request.batch_count = 2;
  const auto resolved = resolve(request, model);
  std::vector<std::pair<Phase, int>> events;
  int with_latents = 0;
  std::vector<uint64_t> seeds;
  generate(
      model, resolved,
      [&](const Progress& p) {
        events.emplace_back(p.phase, p.done);
        with_latents += p.latents != nullptr;
        EXPECT_EQ(p.images, 2);
        return true;
      },
      [&](const GeneratedImage& image) {
        seeds.push_back(image.seed);
        EXPECT_NE(image.parameters.find("Seed: " + std::to_string(image.seed) + ","), std::string::npos);
      });
  EXPECT_EQ(seeds, (std::vector<uint64_t>{5, 6}));
  const std::vector<std::pair<Phase, int>> one_image = {{Phase::Encode, 0},  {Phase::Encode, 1}, {Phase::Encode, 2},
                                                         {Phase::Denoise, 0}, {Phase::Denoise, 1}, {Phase::Denoise, 2},
                                                         {Phase::Decode, 0},  {Phase::Decode, 1}};
  auto both = one_image;
  both.insert(both.end(), one_image.begin(), one_image.end());
  EXPECT_EQ(events, both);
  EXPECT_EQ(with_latents, 4);  // every finished step, for both images

  // The second image of a batch is the first image of a request starting at its seed.
  GenerationRequest second = request;
  second.seed = 6;
  second.batch_count = 1;
  const auto alone = generate_image(model, resolve(second, model));
  std::vector<at::Tensor> batch;
  generate(model, resolved, {}, [&](const GeneratedImage& image) { batch.push_back(image.pixels); });
  EXPECT_TRUE(batch.at(1).equal(alone.pixels));

  int images = 0;
  EXPECT_THROW(generate(
                   model, resolved, [](const Progress& p) { return !(p.phase == Phase::Denoise && p.done == 1); },
                   [&](const GeneratedImage&) { ++images; }),
               Cancelled);
  EXPECT_EQ(images, 0);
}

}  // namespace
}  // namespace diffuse::pipeline
