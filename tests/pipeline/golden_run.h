#pragma once
// What the golden-run tests share: a request from a fixture manifest's run, and the comparison with
// its reference latents and image.
#include <filesystem>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "pipeline/request.h"

namespace diffuse::pipeline {

// Final latents within 1e-3 of the reference's largest magnitude; the 8-bit image within 1 level
// everywhere and under 0.2 level on average (float rounding flips the odd pixel across a level
// boundary, never many).
constexpr double kLatentTolerance = 1e-3;
constexpr int kImageLevels = 1;
constexpr double kImageMeanLevels = 0.2;

// The request a manifest's run describes (its plain prompt; init image and mask PNGs from `refs`).
GenerationRequest request_of(const nlohmann::json& run, const std::filesystem::path& refs);

struct RunComparison {
  double latent_error = 0;  // relative to the reference's largest magnitude
  int max_levels = 0;
  double mean_levels = 0;
};

// `pixels`: [H, W, 3] uint8.
RunComparison compare_with_reference(const at::Tensor& latents, const at::Tensor& pixels, const nlohmann::json& run,
                                     const std::filesystem::path& refs);

}  // namespace diffuse::pipeline
