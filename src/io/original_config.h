// What an original (LDM / sgm) config says that a single file's tensor shapes cannot: read here,
// once, into typed facts. Nothing above io/ walks an original config; pipeline/ hands these facts to
// the models' shape inference, and `diffuse convert` writes them back through the same struct.
#pragma once
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "io/ldm_structure.h"

namespace diffuse::io {

struct OriginalConfig {
  // LDM's model.params.unet_config.params, or sgm's network_config.params.
  struct Unet {
    std::optional<int> num_heads;          // heads per level, where num_head_channels is -1
    std::optional<int> num_head_channels;  // or heads this wide at every level
    std::optional<int> image_size;         // the latent side it was trained at
    std::optional<int> adm_in_channels;    // SDXL's added conditioning width
    std::optional<int> norm_num_groups;    // ours ("facts"): LDM always uses 32
  } unet;
  // sgm's ConcatTimestepEmbedderND outdim: the width of each size/crop embedding (SDXL: 256).
  std::optional<int> size_embedding_width;
  struct Vae {
    std::optional<double> scale_factor;  // model.params.scale_factor
    std::optional<int> resolution;       // first_stage_config.params.ddconfig.resolution
    std::optional<int> norm_num_groups;  // ours ("facts")
  } vae;
  // LDM's cond_stage_config, or in an sgm config the embedder of the same kind (CLIP / OpenCLIP).
  struct TextEncoder {
    bool open_clip = false;  // exact GELU rather than CLIP's quick_gelu
    std::optional<int> num_heads;
    std::optional<std::string> activation;
    std::optional<int> bos_token_id, eos_token_id, pad_token_id;  // ours ("facts")
  };
  TextEncoder text_encoder;    // SD 1.x/2.x's one, SDXL's CLIP ViT-L
  TextEncoder text_encoder_2;  // SDXL's OpenCLIP bigG
  // The OpenCLIP layer SD 2.x conditions on: every released config says "penultimate".
  std::string open_clip_layer = "penultimate";
  // The noise schedule: LDM's timesteps / linear_start / linear_end / parameterization, or sgm's
  // denoiser_config (num_idx, discretization linear_start / linear_end, a v-scaling denoiser).
  std::optional<int> train_timesteps;
  std::optional<double> beta_start, beta_end;
  bool v_prediction = false;
};

// Reads an original config (null: none), without guessing what it leaves out. Throws
// diffuse::Error naming the field when one has the wrong type.
OriginalConfig read_original_config(const nlohmann::json& config);

// Fills in what a family's released config says where `config` says nothing: SD 2.x's text encoder
// is OpenCLIP (exact GELU); SDXL's latents are scaled by 0.13025 and its second encoder is OpenCLIP.
// SD 1.x needs nothing: the models' defaults are SD 1.x's. (diffusers' from_single_file likewise
// falls back on the bundled v2-inference / sd_xl_base yaml.)
void add_family_defaults(OriginalConfig& config, LdmFamily family);

// The original (LDM) config that read_original_config reads back to `config`, for <stem>.json
// beside a single file that `diffuse convert` writes. SD 1.x/2.x layout only.
nlohmann::json original_config_json(const OriginalConfig& config, LdmFamily family);

}  // namespace diffuse::io
