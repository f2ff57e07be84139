// /sdapi/v1/txt2img's hires-fix fields (enable_hr, hr_*, denoising_strength) into the generation
// request, errors by those JSON fields, and a hires fixture run from an AUTOMATIC1111 payload alone.
#include <gtest/gtest.h>

#include "image/png_file.h"
#include "pipeline/generation.h"
#include "server/a1111_api.h"
#include "support/fixtures.h"
#include "util/error.h"

namespace diffuse::server {
namespace {

using nlohmann::json;

std::string hires_error_field(const json& payload) {
  try {
    pipeline::validate(parse_a1111_request(payload, false, {}).request);
  } catch (const InvalidParameter& error) {
    return with_a1111_field(error).parameter();
  }
  return "no error";
}

TEST(A1111HiresApi, ReadsTheHiresFields) {
  EXPECT_FALSE(parse_a1111_request({{"prompt", "a cat"}, {"hr_scale", 2}}, false, {}).request.hires);
  const auto request = parse_a1111_request({{"prompt", "a cat"},
                                            {"enable_hr", true},
                                            {"hr_scale", 1.5},
                                            {"hr_upscaler", "Latent (nearest)"},
                                            {"hr_second_pass_steps", 5},
                                            {"denoising_strength", 0.6},
                                            {"hr_sampler_name", "DPM++ 2M"},
                                            {"hr_prompt", "a cat, detailed"},
                                            {"hr_negative_prompt", ""}},
                                           false, {})
                           .request;
  ASSERT_TRUE(request.hires);
  EXPECT_EQ(request.hires->scale, 1.5);
  EXPECT_EQ(request.hires->upscaler, "Latent (nearest)");
  EXPECT_EQ(request.hires->steps, 5);
  EXPECT_EQ(request.hires->denoise, 0.6);
  EXPECT_EQ(request.hires->sampler, "dpm++2m");
  EXPECT_EQ(request.hires->prompt.value_or(""), "a cat, detailed");
  EXPECT_FALSE(request.hires->negative_prompt);  // empty: the first pass's, as AUTOMATIC1111 reads it
  const auto resolved = pipeline::validate(request);
  EXPECT_EQ(resolved.hires->upscaler, pipeline::HiresUpscaler::LatentNearest);
  const auto same = parse_a1111_request({{"enable_hr", true}, {"hr_sampler_name", "Use same sampler"},
                                         {"hr_resize_x", 768}, {"hr_resize_y", 512}}, false, {}).request;
  EXPECT_EQ(same.hires->sampler, "");
  EXPECT_EQ(same.hires->width, 768);
  EXPECT_EQ(same.hires->height, 512);
  EXPECT_EQ(same.hires->upscaler, "Latent");
}

TEST(A1111HiresApi, ErrorsNameTheJsonField) {
  const json base{{"prompt", "a cat"}, {"enable_hr", true}};
  auto payload = base;
  payload["denoising_strength"] = 0;
  EXPECT_EQ(hires_error_field(payload), "denoising_strength");
  payload = base;
  payload["hr_upscaler"] = "SwinIR 4x";
  EXPECT_EQ(hires_error_field(payload), "hr_upscaler");
  payload = base;
  payload["hr_scale"] = 0.5;
  EXPECT_EQ(hires_error_field(payload), "hr_scale");
  payload = base;
  payload["hr_sampler_name"] = "Nope";
  EXPECT_EQ(hires_error_field(payload), "hr_sampler_name");
  payload = base;
  payload["hr_resize_x"] = -8;
  EXPECT_EQ(hires_error_field(payload), "hr_resize_x");
  EXPECT_EQ(hires_error_field(base), "no error");
}

TEST(A1111HiresApi, GivesTheLanczosFixtureFromAPayload) {
  const auto dir = test::fixtures_dir() / "hires";
  const auto manifest = test::read_json(dir / "manifest.json");
  const json* lanczos = nullptr;
  for (const auto& run : manifest.at("runs")) {
    if (run.at("cli").at("hires_upscaler") == "lanczos") lanczos = &run;
  }
  ASSERT_NE(lanczos, nullptr);
  const auto& run = *lanczos;
  const auto& cli = run.at("cli");
  const json payload{{"prompt", run.at("prompt")},
                     {"seed", run.at("seed")},
                     {"steps", run.at("first_pass").at("num_inference_steps")},
                     {"cfg_scale", cli.at("cfg_scale")},
                     {"sampler_name", "Euler"},
                     {"width", run.at("width")},
                     {"height", run.at("height")},
                     {"enable_hr", true},
                     {"hr_scale", cli.at("hires_scale")},
                     {"hr_upscaler", "Lanczos"},
                     {"hr_second_pass_steps", cli.at("hires_steps")},
                     {"denoising_strength", cli.at("hires_denoise")}};
  auto model = pipeline::StableDiffusionModel::load(test::fixtures_dir() / "tiny-sd1/diffusers");
  const auto request = pipeline::resolve(parse_a1111_request(payload, false, {}).request, model);
  const auto image = pipeline::generate_image(model, request);
  const auto expected = image::read_png(dir / "refs" / run.at("second_pass").at("png").get<std::string>()).pixels;
  ASSERT_EQ(image.pixels.sizes(), expected.sizes());
  EXPECT_LE((image.pixels.to(at::kShort) - expected.to(at::kShort)).abs().max().item<int>(), 1);
  EXPECT_NE(image.parameters.find("Denoising strength: 0.45, Hires upscale: 2, Hires steps: 6, Hires upscaler: Lanczos"),
            std::string::npos)
      << image.parameters;
}

}  // namespace
}  // namespace diffuse::server
