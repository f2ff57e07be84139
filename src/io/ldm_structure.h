// The block structure that decides how the original single-file (LDM / CompVis) names and the
// diffusers names correspond. The original numbers UNet blocks flatly and the VAE decoder's levels
// in reverse, so no name can be translated alone; either side's full set of names reveals the
// structure, and io/ldm_names.h builds the one name table from it.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/tensor_map.h"

namespace diffuse::io {

enum class TextEncoderLayout {
  Clip,      // SD 1.x: cond_stage_model.transformer.*, already HF CLIPTextModel names
  OpenClip,  // SD 2.x: cond_stage_model.model.*, OpenCLIP names with fused q/k/v projections
};

// Where each component's tensors sit in an SD 1.x / 2.x single file.
inline const std::string kLdmUnetPrefix = "model.diffusion_model.";
inline const std::string kLdmVaePrefix = "first_stage_model.";
const std::string& ldm_text_encoder_prefix(TextEncoderLayout layout);

// "<prefix><index>.": how both layouts number their blocks, levels and layers.
std::string indexed_name(const std::string& prefix, size_t index);

struct UnetLevel {
  int resnets = 0;
  bool attention = false;  // a transformer after each res block
  bool resampler = false;  // ends in a downsampler (down path) or upsampler (up path)
};

struct UnetBlocks {
  std::vector<UnetLevel> down;  // highest resolution first, as both layouts count
  std::vector<UnetLevel> up;    // lowest resolution first
  int mid_resnets = 0;
  bool mid_attention = false;  // a transformer between consecutive mid res blocks
};

struct VaeLevels {
  int encoder = 0;
  int decoder = 0;
  int resnets = 0;  // the most of any level: extra table rows for absent blocks are never looked up
};

struct TextEncoderLayers {
  TextEncoderLayout layout = TextEncoderLayout::Clip;
  int layers = 0;  // OpenCLIP only: the original's transformer layers
  int used = 0;    // of which the first `used` exist in diffusers; SD 2.x drops the last
};

struct LdmStructure {
  UnetBlocks unet;
  VaeLevels vae;
  TextEncoderLayers text_encoder;
};

// From every tensor name of a checkpoint. `original_config` (null if none) is only consulted for
// the OpenCLIP layer SD 2.x conditions on. Throws diffuse::Error, naming `file`, for a checkpoint
// without a UNet, VAE or known text encoder, or whose UNet blocks are missing or do not mirror.
LdmStructure structure_of_original(const std::vector<std::string>& keys, const nlohmann::json& original_config,
                                   const std::string& file);

// From diffusers components. Every text-encoder layer is used: there is no config to drop one by.
LdmStructure structure_of_diffusers(const TensorMap& unet, const TensorMap& vae, const TensorMap& text_encoder,
                                    TextEncoderLayout layout);

}  // namespace diffuse::io
