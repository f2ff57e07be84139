// The block structure that decides how the original single-file (LDM / CompVis) names and the
// diffusers names correspond. The original numbers UNet blocks flatly and the VAE decoder's levels
// in reverse, so no name can be translated alone; either side's full set of names reveals the
// structure, and io/ldm_names.h builds the one name table from it.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/tensor_map.h"

namespace diffuse::io {

// How one text encoder names its tensors in a single file.
enum class TextEncoderLayout {
  Clip,      // already HF CLIPTextModel names (text_model.*)
  OpenClip,  // OpenCLIP names with fused q/k/v projections (transformer.resblocks.*)
};

// Which text encoders a single file holds, and where.
enum class LdmFamily {
  Sd1,   // CLIP ViT-L as cond_stage_model.transformer.*
  Sd2,   // OpenCLIP ViT-H as cond_stage_model.model.*; diffusers lacks the last layer (never run)
  Sdxl,  // sgm's conditioner: CLIP ViT-L as conditioner.embedders.0.transformer.*, OpenCLIP bigG as
         // conditioner.embedders.1.model.* with its text projection and every layer
};
const char* ldm_family_name(LdmFamily family);  // "sd1", "sd2", "sdxl"

// Where each component's tensors sit in a single file.
inline const std::string kLdmUnetPrefix = "model.diffusion_model.";
inline const std::string kLdmVaePrefix = "first_stage_model.";
// SD 1.x (Clip) / 2.x (OpenClip): the one text encoder.
const std::string& ldm_text_encoder_prefix(TextEncoderLayout layout);
// SDXL: the first (CLIP ViT-L) and second (OpenCLIP bigG) text encoders.
inline const std::string kSdxlTextEncoderPrefix = "conditioner.embedders.0.transformer.";
inline const std::string kSdxlTextEncoder2Prefix = "conditioner.embedders.1.model.";

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
  std::string prefix;  // where its tensors sit in the file
  int layers = 0;      // OpenCLIP only: the original's transformer layers
  int used = 0;        // of which the first `used` exist in diffusers; SD 2.x drops the last
  // OpenCLIP only: text_projection is a weight of the diffusers model (SDXL's
  // CLIPTextModelWithProjection, stored transposed in the file) rather than unused (SD 2.x).
  bool projection = false;
};

struct LdmStructure {
  LdmFamily family = LdmFamily::Sd1;
  UnetBlocks unet;
  VaeLevels vae;
  TextEncoderLayers text_encoder;
  std::optional<TextEncoderLayers> text_encoder_2;  // SDXL only
};

// lllyasviel's ControlNet files (cldm): the copied encoder under the UNet's original names
// (time_embed, input_blocks, middle_block, label_emb), the hint encoder as input_hint_block.<i>
// (convolutions at some indices, activations between them), the zero convs as zero_convs.<n>.0 and
// middle_block_out.0; every name under control_model. (as ControlLDM saves it) or under no prefix.
inline const std::string kControlNetPrefix = "control_model.";
struct ControlNetStructure {
  std::string prefix;           // kControlNetPrefix, or "" for a file that has none
  UnetBlocks encoder;           // the down path and the middle block; no up path
  std::vector<int> hint_convs;  // input_hint_block indices that hold a convolution, in order
  int zero_convs = 0;           // zero_convs.<n>: one per skip feature
};
// From a single file's names. Throws diffuse::Error naming `file` when it holds no ControlNet.
ControlNetStructure structure_of_original_controlnet(const std::vector<std::string>& keys, const std::string& file);
// From a diffusers ControlNetModel's names (for export): the hint convs at the even indices, as
// cldm's Sequential alternates convolutions and SiLUs.
ControlNetStructure structure_of_diffusers_controlnet(const TensorMap& controlnet);

// From every tensor name of a checkpoint; the family from where its text encoders sit
// (cond_stage_model.transformer / .model, or SDXL's conditioner.embedders.0 and .1).
// `open_clip_layer`: the OpenCLIP layer SD 2.x conditions on (io/original_config.h; "last" keeps
// every layer).
// Throws diffuse::Error, naming `file`, for a checkpoint without a UNet, VAE or known text
// encoder(s), or whose UNet blocks are missing or do not mirror.
LdmStructure structure_of_original(const std::vector<std::string>& keys, const std::string& open_clip_layer,
                                   const std::string& file);

// From diffusers components: SD 1.x (layout Clip) or SD 2.x (OpenClip). Every text-encoder layer is
// used: there is no config to drop one by.
LdmStructure structure_of_diffusers(const TensorMap& unet, const TensorMap& vae, const TensorMap& text_encoder,
                                    TextEncoderLayout layout);
// SDXL: `text_encoder` is CLIP ViT-L, `text_encoder_2` OpenCLIP bigG with its text_projection.
LdmStructure structure_of_diffusers(const TensorMap& unet, const TensorMap& vae, const TensorMap& text_encoder,
                                    const TensorMap& text_encoder_2);

}  // namespace diffuse::io
