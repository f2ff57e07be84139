#pragma once
// One generation request, as every front end (the CLI, the server, the benchmark) fills it in, and
// the one place it is checked. Values arrive as people write them (names, not enums); validate()
// parses and checks everything that needs no model, so bad input fails before seconds of loading,
// and resolve() adds the model's defaults and limits. Each check lives in exactly one of the two.
// Errors are diffuse::InvalidParameter naming the field below (width, cfg_scale, timestep_spacing);
// front ends translate that to their own names (--width, the JSON field width).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "sampling/sampling.h"

namespace diffuse::pipeline {

class StableDiffusionModel;

struct ImageSize {
  int width = 0;
  int height = 0;
  bool operator==(const ImageSize& other) const { return width == other.width && height == other.height; }
};
struct CropOffset {
  int x = 0;  // left
  int y = 0;  // top
};

struct GenerationRequest {
  std::string prompt;
  std::string negative_prompt;  // empty: the unconditional prompt "", as diffusers uses
  int width = 0;                // pixels; 0: the model's training size
  int height = 0;
  int steps = 20;
  double cfg_scale = 7.5;  // 1 or less: no guidance (one UNet pass per step)
  std::string sampler = "euler";
  std::string schedule = "default";  // default | karras | exponential | sgm_uniform
  std::string timestep_spacing;      // leading | trailing | linspace; empty: the scheduler config's
  std::string prediction;            // epsilon | v_prediction; empty: the scheduler config's
  double eta = 0;
  uint64_t seed = 42;   // of the first image; image i of a batch uses seed + i
  int batch_count = 1;  // images made one after another
  int clip_skip = 1;    // AUTOMATIC1111's meaning: 1 = the text encoder's last layer the model uses
  // SDXL's size conditioning (text_time), as diffusers' original_size, crops_coords_top_left and
  // target_size; unset: the image's size, (0, 0), the image's size.
  std::optional<ImageSize> original_size;
  std::optional<CropOffset> crop_coords;
  std::optional<ImageSize> target_size;
};

// A request that passed validate() (and, once a model is loaded, resolve()).
struct ResolvedRequest {
  std::string prompt;
  std::string negative_prompt;
  int width = 0;  // 0 until resolve() puts in the model's size
  int height = 0;
  double cfg_scale = 7.5;
  uint64_t seed = 42;
  int batch_count = 1;
  int clip_skip = 1;
  // resolve() fills these in for SDXL models (and refuses them for others).
  std::optional<ImageSize> original_size;
  std::optional<CropOffset> crop_coords;
  std::optional<ImageSize> target_size;
  sampling::SamplerOptions sampler;
  // What will run but may not give what the user hopes (a size far from the model's training
  // size): for the front end to show. Filled by resolve().
  std::vector<std::string> warnings;

  uint64_t seed_of(int image) const { return seed + static_cast<uint64_t>(image); }
};

ResolvedRequest validate(const GenerationRequest& request);
// Fills width and height where 0, checks them against the model's latent grid and the steps
// against its training schedule, and adds warnings.
ResolvedRequest resolve(const ResolvedRequest& request, const StableDiffusionModel& model);
ResolvedRequest resolve(const GenerationRequest& request, const StableDiffusionModel& model);

// Where image `seed` of a request goes: `output` for a single image, `<stem>-<seed><ext>` for each
// image of a batch.
std::filesystem::path image_path(const std::filesystem::path& output, int batch_count, uint64_t seed);
// Per-step pictures of one image: `folder` for a single image, `folder/seed-<seed>` in a batch.
std::filesystem::path steps_folder(const std::filesystem::path& folder, int batch_count, uint64_t seed);

// The "parameters" text AUTOMATIC1111's web UI stores in its PNGs, which many tools read back.
std::string a1111_parameters(const ResolvedRequest& request, uint64_t seed, const std::string& model_name);

}  // namespace diffuse::pipeline
