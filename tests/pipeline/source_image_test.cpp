// img2img, inpainting and outpainting inputs: refused by field name, sized from the init image,
// prepared as diffusers prepares them; and every sampler runs from part-way down its schedule.
#include <gtest/gtest.h>

#include "pipeline/generation.h"
#include "pipeline/request.h"
#include "support/fixtures.h"
#include "util/error.h"

namespace diffuse::pipeline {
namespace {

StableDiffusionModel& tiny_sd1() {
  static auto model = StableDiffusionModel::load(test::fixtures_dir() / "tiny-sd1" / "diffusers");
  return model;
}

// A 64x48 picture: left half dark red, right half light blue.
at::Tensor two_colours(int width = 64, int height = 48) {
  at::Tensor pixels = at::empty({height, width, 3}, at::kByte);
  pixels.narrow(1, 0, width / 2).copy_(at::tensor({120, 20, 20}, at::kInt).to(at::kByte).expand({height, width / 2, 3}));
  pixels.narrow(1, width / 2, width - width / 2)
      .copy_(at::tensor({150, 200, 250}, at::kInt).to(at::kByte).expand({height, width - width / 2, 3}));
  return pixels;
}

GenerationRequest img2img(at::Tensor image = two_colours()) {
  GenerationRequest request;
  request.prompt = "a photo of a cat";
  request.steps = 8;
  request.init_image = image;
  return request;
}

std::string refusal(const GenerationRequest& request, const char* parameter) {
  try {
    resolve(request, tiny_sd1());
  } catch (const InvalidParameter& error) {
    EXPECT_EQ(error.parameter(), parameter);
    return error.what();
  }
  return "accepted";
}

TEST(SourceImage, BadValuesAreRefusedByTheirField) {
  GenerationRequest request = img2img();
  request.strength = 0;
  EXPECT_EQ(refusal(request, "strength"), "strength: 0 is outside (0, 1]");
  request.strength = 1.5;
  EXPECT_EQ(refusal(request, "strength"), "strength: 1.5 is outside (0, 1]");
  request.strength = 0.1;
  EXPECT_EQ(refusal(request, "strength"),
            "strength: 0.1 with 8 steps runs no step (int(steps x strength) = 0): raise steps or strength");

  GenerationRequest text_only;
  text_only.strength = 0.5;
  EXPECT_EQ(refusal(text_only, "strength"), "strength: applies only with an init image");
  text_only.strength.reset();
  text_only.mask = at::zeros({8, 8, 1}, at::kByte);
  EXPECT_EQ(refusal(text_only, "mask"), "mask: needs an init image to repaint");

  request = img2img(at::zeros({8, 8, 3}));
  EXPECT_EQ(refusal(request, "init_image"), "init_image: expected 8-bit pixels [height, width, 1-4 channels], got CPUFloatType [8, 8, 3]");
  request = img2img();
  request.mask_blur = -1;
  EXPECT_EQ(refusal(request, "mask_blur"), "mask_blur: -1 is outside 0..64");
  request.mask_blur = 4;
  request.outpaint = image::Padding{};
  EXPECT_EQ(refusal(request, "outpaint"), "outpaint: adds nothing: give at least one side more than 0 pixels");
  request.outpaint = image::Padding{8, -1, 0, 0};
  EXPECT_EQ(refusal(request, "outpaint"), "outpaint: -1 pixels is outside 0..4096");
  request.outpaint = image::Padding{8, 0, 0, 0};
  request.outpaint_fill = "mirror";
  EXPECT_EQ(refusal(request, "outpaint_fill"), "outpaint_fill: 'mirror' is not one of edge, noise");
}

TEST(SourceImage, TheRunTakesTheInitImagesSizeOrResizesIt) {
  auto resolved = resolve(img2img(), tiny_sd1());
  EXPECT_EQ(resolved.width, 64);
  EXPECT_EQ(resolved.height, 48);
  EXPECT_DOUBLE_EQ(resolved.strength, 0.75);
  EXPECT_EQ(resolved.first_step, 2);  // 8 - int(8 x 0.75)
  EXPECT_TRUE(resolved.warnings.size() <= 1);  // at most the small-area warning
  // diffusers' preprocessing: / 255, then 2x - 1.
  EXPECT_FLOAT_EQ(resolved.source.image[0][0][0][0].item<float>(), 120.0f / 255.0f * 2 - 1);
  EXPECT_FALSE(resolved.source.mask.defined());

  // An odd size is rounded down to the latent grid (8 here), with a warning that says so.
  resolved = resolve(img2img(two_colours(70, 45)), tiny_sd1());
  EXPECT_EQ(resolved.width, 64);
  EXPECT_EQ(resolved.height, 40);
  ASSERT_FALSE(resolved.warnings.empty());
  EXPECT_EQ(resolved.warnings.front(), "the init image 70x45 is resized to 64x40 (sizes are multiples of 8 for this model, or as asked)");
  EXPECT_EQ(resolved.source.pixels.sizes(), (std::vector<int64_t>{40, 64, 3}));

  // A size that is asked for wins.
  auto request = img2img();
  request.width = 32;
  request.height = 32;
  resolved = resolve(request, tiny_sd1());
  EXPECT_EQ(resolved.source.image.sizes(), (std::vector<int64_t>{1, 3, 32, 32}));
}

TEST(SourceImage, MasksAreGreyBinarizedAndResizedToTheImage) {
  auto request = img2img();
  // RGB mask at half size: the right half white.
  at::Tensor mask = at::zeros({24, 32, 3}, at::kByte);
  mask.narrow(1, 16, 16).fill_(255);
  request.mask = mask;
  request.mask_blur = 0;
  const auto resolved = resolve(request, tiny_sd1());
  ASSERT_TRUE(resolved.source.mask.defined());
  EXPECT_EQ(resolved.source.mask.sizes(), (std::vector<int64_t>{1, 1, 48, 64}));
  EXPECT_FLOAT_EQ(resolved.source.mask[0][0][10][10].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(resolved.source.mask[0][0][10][50].item<float>(), 1.0f);
  EXPECT_TRUE(resolved.source.paste_mask.equal(resolved.source.mask[0][0]));
}

TEST(SourceImage, OutpaintingGrowsTheCanvasToTheGridAndMasksTheNewArea) {
  auto request = img2img();
  request.outpaint = image::Padding{16, 0, 0, 4};
  request.mask_blur = 2;
  const auto resolved = resolve(request, tiny_sd1());
  // 64 + 16 = 80 wide; 48 + 4 = 52 high grows to 56 at the bottom.
  EXPECT_EQ(resolved.width, 80);
  EXPECT_EQ(resolved.height, 56);
  EXPECT_EQ(resolved.outpaint->bottom, 8);
  const auto& mask = resolved.source.mask[0][0];
  EXPECT_FLOAT_EQ(mask[10][5].item<float>(), 1.0f);   // new, on the left
  EXPECT_FLOAT_EQ(mask[10][17].item<float>(), 1.0f);  // the seam, mask_blur pixels into the old image
  EXPECT_FLOAT_EQ(mask[10][40].item<float>(), 0.0f);  // old
  EXPECT_FLOAT_EQ(mask[54][40].item<float>(), 1.0f);  // new, at the bottom
  // Edge fill: the new left columns repeat the old left edge.
  EXPECT_TRUE(resolved.source.pixels[10][0].equal(at::tensor({120, 20, 20}, at::kInt).to(at::kByte)));
  EXPECT_NE(a1111_parameters(resolved, 1, "m").find(", Denoising strength: 0.75, Mask blur: 2, Outpaint: 16,0,0,8 edge"),
            std::string::npos);
}

TEST(SourceImage, EverySamplerRunsFromPartWayDownItsSchedule) {
  for (const auto& [name, description] : sampling::sampler_names()) {
    auto request = img2img();
    request.sampler = name;
    request.strength = 0.5;
    request.cfg_scale = 1;
    auto resolved = resolve(request, tiny_sd1());
    int reported = 0, total = 0;
    const ProgressCallback progress = [&](const Progress& p) {
      if (p.phase == Phase::Denoise && p.done > 0) {
        ++reported;
        total = p.total;
      }
      return true;
    };
    const auto image = generate_image(tiny_sd1(), resolved, 0, progress);
    EXPECT_EQ(total, 4) << name;
    EXPECT_EQ(reported, 4) << name;
    EXPECT_TRUE(at::isfinite(image.latents).all().item<bool>()) << name;
    EXPECT_NE(image.parameters.find("Denoising strength: 0.5"), std::string::npos) << name;
  }
}

TEST(SourceImage, InpaintingKeepsTheUnmaskedPixelsExactly) {
  auto request = img2img();
  at::Tensor mask = at::zeros({48, 64, 1}, at::kByte);
  mask.narrow(0, 8, 16).narrow(1, 8, 16).fill_(255);
  request.mask = mask;
  request.steps = 2;
  request.strength = 1.0;
  const auto resolved = resolve(request, tiny_sd1());
  const auto image = generate_image(tiny_sd1(), resolved);
  // Beyond the blur's reach (2.5 x 4 pixels past the mask's edge at row 24), the init image itself.
  EXPECT_TRUE(image.pixels.narrow(0, 35, 13).equal(resolved.source.pixels.narrow(0, 35, 13)));
  EXPECT_FALSE(image.pixels.narrow(0, 12, 8).narrow(1, 12, 8).equal(resolved.source.pixels.narrow(0, 12, 8).narrow(1, 12, 8)));
  EXPECT_NE(image.parameters.find("Denoising strength: 1, Mask blur: 4"), std::string::npos);
}

}  // namespace
}  // namespace diffuse::pipeline
