#include "pipeline/golden_run.h"

#include "image/png_file.h"
#include "support/fixtures.h"

namespace diffuse::pipeline {

namespace fs = std::filesystem;

namespace {

// Pixels of a fixture PNG, as the reference pipeline loaded them.
at::Tensor fixture_png(const fs::path& refs, const nlohmann::json& name) {
  return image::read_png(refs / name.get<std::string>()).pixels;
}

}  // namespace

GenerationRequest request_of(const nlohmann::json& run, const fs::path& refs) {
  GenerationRequest request;
  request.prompt = run.at("prompt").get<std::string>();
  if (!run.at("negative_prompt").is_null()) request.negative_prompt = run.at("negative_prompt").get<std::string>();
  request.cfg_scale = run.at("guidance_scale").get<double>();
  request.seed = run.at("seed").get<uint64_t>();
  request.width = run.at("width").get<int>();
  request.height = run.at("height").get<int>();
  const auto& cli = run.at("cli");
  request.sampler = cli.at("sampler").get<std::string>();
  request.steps = run.at("num_inference_steps").get<int>();
  if (!cli.at("schedule").is_null()) request.schedule = cli.at("schedule").get<std::string>();
  if (!cli.at("timestep_spacing").is_null()) request.timestep_spacing = cli.at("timestep_spacing").get<std::string>();
  request.eta = cli.at("eta").get<double>();
  // SDXL's size conditioning; diffusers writes sizes as (height, width) and the crop as (top, left).
  if (cli.contains("original_size")) {
    const auto original = cli.at("original_size").get<std::vector<int>>();
    const auto crop = cli.at("crops_coords_top_left").get<std::vector<int>>();
    const auto target = cli.at("target_size").get<std::vector<int>>();
    request.original_size = ImageSize{original.at(1), original.at(0)};
    request.crop_coords = CropOffset{crop.at(1), crop.at(0)};
    request.target_size = ImageSize{target.at(1), target.at(0)};
  }
  if (run.contains("init_image_png")) {
    request.init_image = fixture_png(refs, run.at("init_image_png"));
    request.strength = run.at("strength").get<double>();
  }
  if (run.contains("mask_png")) {
    request.mask = fixture_png(refs, run.at("mask_png"));
    request.mask_blur = 0;  // diffusers' mask, binarized, with no blur
  }
  return request;
}

RunComparison compare_with_reference(const at::Tensor& latents, const at::Tensor& pixels, const nlohmann::json& run,
                                     const fs::path& refs) {
  RunComparison compared;
  compared.latent_error = test::relative_max_error(latents, test::read_reference(refs / run.at("final_latents")));
  const auto expected_pixels =
      (test::read_reference(refs / run.at("image")) * 255).round().clamp(0, 255).to(at::kShort).squeeze(0);
  const auto pixel_diff = (pixels.to(at::kShort) - expected_pixels).abs();
  compared.max_levels = pixel_diff.max().item<int>();
  compared.mean_levels = pixel_diff.to(at::kFloat).mean().item<double>();
  return compared;
}

}  // namespace diffuse::pipeline
