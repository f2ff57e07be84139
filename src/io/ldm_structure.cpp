#include "io/ldm_structure.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "util/error.h"
#include "util/strings.h"

namespace diffuse::io {

namespace {

using nlohmann::json;
using Names = std::set<std::string>;

// The names under `prefix`, without it: a sorted set answers "anything under X?" in one lookup.
Names names_under(const std::vector<std::string>& keys, const std::string& prefix) {
  Names names;
  for (const auto& key : keys) {
    if (starts_with(key, prefix)) names.insert(key.substr(prefix.size()));
  }
  return names;
}

Names names_of(const TensorMap& tensors) {
  Names names;
  for (const auto& [name, tensor] : tensors) names.insert(name);
  return names;
}

bool any_under(const Names& names, const std::string& prefix) {
  const auto it = names.lower_bound(prefix);
  return it != names.end() && starts_with(*it, prefix);
}

// 1 + the largest n of the names "<prefix><n>.*"; 0 when there are none.
int count_indexed(const Names& names, const std::string& prefix) {
  int count = 0;
  for (auto it = names.lower_bound(prefix); it != names.end() && starts_with(*it, prefix); ++it) {
    size_t digits = prefix.size();
    while (digits < it->size() && std::isdigit(static_cast<unsigned char>((*it)[digits]))) ++digits;
    const size_t length = digits - prefix.size();
    if (length == 0 || length > 6 || digits >= it->size() || (*it)[digits] != '.') continue;
    count = std::max(count, std::stoi(it->substr(prefix.size(), length)) + 1);
  }
  return count;
}

// ---- From the original names ---------------------------------------------------------------------

// The original numbers the blocks of both paths in one flat sequence; a resampler block (or, going
// up, a block that ends in one) closes a level. The down path and the middle block: a UNet's and a
// ControlNet's alike.
UnetBlocks original_encoder_blocks(const Names& names, const std::string& file, const std::string& what) {
  const auto fail = [&](const std::string& why) { return Error(file + ": " + why); };
  UnetBlocks blocks;
  blocks.down.emplace_back();
  const int inputs = count_indexed(names, "input_blocks.");
  for (int i = 1; i < inputs; ++i) {  // input_blocks.0 is conv_in
    const std::string block = indexed_name("input_blocks.", i);
    if (!any_under(names, block)) throw fail(what + " has no input_blocks." + std::to_string(i));
    if (any_under(names, block + "0.op.")) {
      blocks.down.back().resampler = true;
      blocks.down.emplace_back();
    } else {
      ++blocks.down.back().resnets;
      blocks.down.back().attention = blocks.down.back().attention || any_under(names, block + "1.");
    }
  }

  const int middle = count_indexed(names, "middle_block.");
  blocks.mid_resnets = (middle + 1) / 2;
  blocks.mid_attention = middle > 1;
  return blocks;
}

UnetBlocks original_unet_blocks(const Names& names, const std::string& file) {
  const auto fail = [&](const std::string& why) { return Error(file + ": " + why); };
  UnetBlocks blocks = original_encoder_blocks(names, file, "UNet");
  blocks.up.emplace_back();
  const int outputs = count_indexed(names, "output_blocks.");
  for (int i = 0; i < outputs; ++i) {
    const std::string block = indexed_name("output_blocks.", i);
    if (!any_under(names, block)) throw fail("UNet has no output_blocks." + std::to_string(i));
    // The upsampler follows the res block, or its transformer when it has one.
    const bool upsampler_at_1 = any_under(names, block + "1.conv.");
    auto& level = blocks.up.back();
    ++level.resnets;
    level.attention = level.attention || (!upsampler_at_1 && any_under(names, block + "1."));
    if (upsampler_at_1 || any_under(names, block + "2.conv.")) {
      level.resampler = true;
      blocks.up.emplace_back();
    }
  }

  // Diffusers' up level k mirrors down level n-1-k with one res block more (the skip from the
  // downsampler); anything else means blocks are missing from the file.
  bool mirrored = blocks.up.size() == blocks.down.size();
  for (size_t k = 0; mirrored && k < blocks.up.size(); ++k) {
    const int down_resnets = blocks.down[blocks.down.size() - 1 - k].resnets;
    mirrored = down_resnets > 0 && blocks.up[k].resnets == down_resnets + 1;
  }
  if (!mirrored) throw fail("UNet blocks are inconsistent (input_blocks and output_blocks do not mirror)");
  return blocks;
}

// The original and diffusers spell the same VAE levels differently, so this takes the spellings.
VaeLevels vae_levels(const Names& names, const std::string& encoder_levels, const std::string& decoder_levels,
                     const std::string& resnets) {
  VaeLevels levels{count_indexed(names, encoder_levels), count_indexed(names, decoder_levels), 0};
  for (int l = 0; l < std::max(levels.encoder, levels.decoder); ++l) {
    levels.resnets = std::max({levels.resnets, count_indexed(names, indexed_name(encoder_levels, l) + resnets),
                               count_indexed(names, indexed_name(decoder_levels, l) + resnets)});
  }
  return levels;
}

}  // namespace

const char* ldm_family_name(LdmFamily family) {
  switch (family) {
    case LdmFamily::Sd1: return "sd1";
    case LdmFamily::Sd2: return "sd2";
    case LdmFamily::Sdxl: return "sdxl";
  }
  return "?";
}

const std::string& ldm_text_encoder_prefix(TextEncoderLayout layout) {
  static const std::string clip = "cond_stage_model.transformer.";
  static const std::string open_clip = "cond_stage_model.model.";
  return layout == TextEncoderLayout::Clip ? clip : open_clip;
}

std::string indexed_name(const std::string& prefix, size_t index) {
  return prefix + std::to_string(index) + ".";
}

LdmStructure structure_of_original(const std::vector<std::string>& keys, const std::string& open_clip_layer,
                                   const std::string& file) {
  const auto fail = [&](const std::string& why) { return Error(file + ": " + why); };
  const Names unet = names_under(keys, kLdmUnetPrefix);
  const Names vae = names_under(keys, kLdmVaePrefix);
  const Names clip = names_under(keys, ldm_text_encoder_prefix(TextEncoderLayout::Clip));
  const Names open_clip = names_under(keys, ldm_text_encoder_prefix(TextEncoderLayout::OpenClip));
  const std::string conditioner = "conditioner.embedders.";
  const bool sgm = !names_under(keys, conditioner).empty();
  if (unet.empty()) throw fail("no UNet tensors (" + kLdmUnetPrefix + "*) in this checkpoint");
  if (vae.empty()) throw fail("no VAE tensors (" + kLdmVaePrefix + "*) in this checkpoint");
  if (sgm && (!clip.empty() || !open_clip.empty())) {
    throw fail("text encoders both as cond_stage_model.* and as " + conditioner + "*");
  }
  if (!sgm && clip.empty() == open_clip.empty()) {
    throw fail(!clip.empty() ? "both a CLIP and an OpenCLIP text encoder (cond_stage_model.transformer.* and .model.*)"
                             : "no known text encoder (" + ldm_text_encoder_prefix(TextEncoderLayout::Clip) + "*, " +
                                   ldm_text_encoder_prefix(TextEncoderLayout::OpenClip) + "* or " + conditioner +
                                   "*)");
  }

  LdmStructure structure;
  structure.unet = original_unet_blocks(unet, file);
  structure.vae = vae_levels(vae, "encoder.down.", "decoder.up.", "block.");
  auto& text = structure.text_encoder;
  if (sgm) {
    // SDXL base. Other sgm conditioners (the refiner's lone OpenCLIP as embedders.0.model) differ.
    const Names second = names_under(keys, kSdxlTextEncoder2Prefix);
    if (names_under(keys, kSdxlTextEncoderPrefix).empty() || second.empty()) {
      throw fail("text encoders under " + conditioner + "* that are not SDXL base's (" + kSdxlTextEncoderPrefix +
                 "* and " + kSdxlTextEncoder2Prefix + "*)");
    }
    structure.family = LdmFamily::Sdxl;
    text = {TextEncoderLayout::Clip, kSdxlTextEncoderPrefix};
    // SDXL conditions on the penultimate layer too, but diffusers' text_encoder_2 keeps every
    // layer (the pipeline takes hidden_states[-2], and the pooled output needs the last one).
    const int layers = count_indexed(second, "transformer.resblocks.");
    structure.text_encoder_2 = TextEncoderLayers{TextEncoderLayout::OpenClip, kSdxlTextEncoder2Prefix, layers, layers,
                                                 /*projection=*/true};
  } else if (clip.empty()) {
    structure.family = LdmFamily::Sd2;
    text.layout = TextEncoderLayout::OpenClip;
    text.prefix = ldm_text_encoder_prefix(TextEncoderLayout::OpenClip);
    text.layers = count_indexed(open_clip, "transformer.resblocks.");
    // SD 2.x conditions on the penultimate layer's output (then ln_final); diffusers' SD 2.x text
    // encoder is that truncated model, so both layouts load to the same layers.
    const bool drop_last = open_clip_layer != "last";
    text.used = std::max(0, text.layers - (drop_last ? 1 : 0));
  } else {
    structure.family = LdmFamily::Sd1;
    text.prefix = ldm_text_encoder_prefix(TextEncoderLayout::Clip);
  }
  return structure;
}

namespace {

LdmStructure unet_and_vae_of_diffusers(const TensorMap& unet, const TensorMap& vae) {
  LdmStructure structure;
  const Names unet_names = names_of(unet);
  const auto levels = [&](const std::string& blocks, const std::string& resampler) {
    std::vector<UnetLevel> result(count_indexed(unet_names, blocks));
    for (size_t l = 0; l < result.size(); ++l) {
      const std::string level = indexed_name(blocks, l);
      result[l] = {count_indexed(unet_names, level + "resnets."), any_under(unet_names, level + "attentions."),
                   any_under(unet_names, level + resampler)};
    }
    return result;
  };
  structure.unet.down = levels("down_blocks.", "downsamplers.");
  structure.unet.up = levels("up_blocks.", "upsamplers.");
  structure.unet.mid_resnets = count_indexed(unet_names, "mid_block.resnets.");
  structure.unet.mid_attention = any_under(unet_names, "mid_block.attentions.");
  structure.vae = vae_levels(names_of(vae), "encoder.down_blocks.", "decoder.up_blocks.", "resnets.");
  return structure;
}

TextEncoderLayers text_encoder_of_diffusers(const TensorMap& text_encoder, TextEncoderLayout layout,
                                            const std::string& prefix, bool projection) {
  const int layers = count_indexed(names_of(text_encoder), "text_model.encoder.layers.");
  return {layout, prefix, layers, layers, projection};
}

}  // namespace

LdmStructure structure_of_diffusers(const TensorMap& unet, const TensorMap& vae, const TensorMap& text_encoder,
                                    TextEncoderLayout layout) {
  LdmStructure structure = unet_and_vae_of_diffusers(unet, vae);
  structure.family = layout == TextEncoderLayout::Clip ? LdmFamily::Sd1 : LdmFamily::Sd2;
  structure.text_encoder =
      text_encoder_of_diffusers(text_encoder, layout, ldm_text_encoder_prefix(layout), /*projection=*/false);
  return structure;
}

LdmStructure structure_of_diffusers(const TensorMap& unet, const TensorMap& vae, const TensorMap& text_encoder,
                                    const TensorMap& text_encoder_2) {
  LdmStructure structure = unet_and_vae_of_diffusers(unet, vae);
  structure.family = LdmFamily::Sdxl;
  structure.text_encoder =
      text_encoder_of_diffusers(text_encoder, TextEncoderLayout::Clip, kSdxlTextEncoderPrefix, /*projection=*/false);
  structure.text_encoder_2 = text_encoder_of_diffusers(text_encoder_2, TextEncoderLayout::OpenClip,
                                                       kSdxlTextEncoder2Prefix, /*projection=*/true);
  return structure;
}

ControlNetStructure structure_of_original_controlnet(const std::vector<std::string>& keys, const std::string& file) {
  ControlNetStructure structure;
  const bool prefixed = std::any_of(keys.begin(), keys.end(), [](const std::string& key) {
    return starts_with(key, kControlNetPrefix + "input_hint_block.");
  });
  structure.prefix = prefixed ? kControlNetPrefix : "";
  const Names names = names_under(keys, structure.prefix);
  if (!any_under(names, "input_hint_block.") || !any_under(names, "zero_convs.")) {
    throw Error(file + ": not a ControlNet (no " + kControlNetPrefix + "input_hint_block.* and zero_convs.*, nor "
                "the same without the prefix)");
  }
  structure.encoder = original_encoder_blocks(names, file, "ControlNet");
  const int hint_layers = count_indexed(names, "input_hint_block.");
  for (int i = 0; i < hint_layers; ++i) {
    if (names.count(indexed_name("input_hint_block.", i) + "weight")) structure.hint_convs.push_back(i);
  }
  if (structure.hint_convs.size() < 2) {
    throw Error(file + ": the ControlNet's input_hint_block has " + std::to_string(structure.hint_convs.size()) +
                " convolutions, expected at least a first and a last");
  }
  structure.zero_convs = count_indexed(names, "zero_convs.");
  return structure;
}

ControlNetStructure structure_of_diffusers_controlnet(const TensorMap& controlnet) {
  const Names names = names_of(controlnet);
  ControlNetStructure structure;
  structure.prefix = kControlNetPrefix;
  const auto levels = count_indexed(names, "down_blocks.");
  for (int l = 0; l < levels; ++l) {
    const std::string level = indexed_name("down_blocks.", l);
    structure.encoder.down.push_back({count_indexed(names, level + "resnets."), any_under(names, level + "attentions."),
                                      any_under(names, level + "downsamplers.")});
  }
  structure.encoder.mid_resnets = count_indexed(names, "mid_block.resnets.");
  structure.encoder.mid_attention = any_under(names, "mid_block.attentions.");
  const int convs = count_indexed(names, "controlnet_cond_embedding.blocks.") + 2;
  for (int i = 0; i < convs; ++i) structure.hint_convs.push_back(2 * i);
  structure.zero_convs = count_indexed(names, "controlnet_down_blocks.");
  return structure;
}

}  // namespace diffuse::io
