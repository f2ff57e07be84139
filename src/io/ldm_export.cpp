#include "io/ldm_export.h"

#include <cctype>
#include <map>
#include <optional>
#include <set>

#include "util/error.h"

namespace diffuse::io {

namespace {

using NamePairs = std::vector<std::pair<std::string, std::string>>;

// The tables of ldm_layout.cpp read right to left (diffusers -> original).
const NamePairs kUnetTopLevel = {
    {"time_embedding.linear_1.", "time_embed.0."}, {"time_embedding.linear_2.", "time_embed.2."},
    {"conv_in.", "input_blocks.0.0."},              {"conv_norm_out.", "out.0."},
    {"conv_out.", "out.2."},                        {"add_embedding.linear_1.", "label_emb.0.0."},
    {"add_embedding.linear_2.", "label_emb.0.2."},
};
const NamePairs kUnetResnet = {
    {"norm1.", "in_layers.0."},  {"conv1.", "in_layers.2."},  {"time_emb_proj.", "emb_layers.1."},
    {"norm2.", "out_layers.0."}, {"conv2.", "out_layers.3."}, {"conv_shortcut.", "skip_connection."},
};
const NamePairs kVaeResnet = {
    {"norm1.", "norm1."}, {"conv1.", "conv1."}, {"norm2.", "norm2."}, {"conv2.", "conv2."},
    {"conv_shortcut.", "nin_shortcut."},
};
const NamePairs kVaeAttention = {
    {"group_norm.", "norm."}, {"to_q.", "q."}, {"to_k.", "k."}, {"to_v.", "v."}, {"to_out.0.", "proj_out."},
};
const NamePairs kVaeTopLevel = {
    {"encoder.conv_in.", "encoder.conv_in."},   {"encoder.conv_out.", "encoder.conv_out."},
    {"encoder.conv_norm_out.", "encoder.norm_out."}, {"decoder.conv_in.", "decoder.conv_in."},
    {"decoder.conv_out.", "decoder.conv_out."}, {"decoder.conv_norm_out.", "decoder.norm_out."},
    {"quant_conv.", "quant_conv."},             {"post_quant_conv.", "post_quant_conv."},
};

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

std::optional<std::string> rename_prefix(const std::string& text, const NamePairs& pairs) {
  for (const auto& [from, to] : pairs) {
    if (starts_with(text, from)) return to + text.substr(from.size());
  }
  return std::nullopt;
}

// Takes "<n>." off the front of `text`; -1 (text unchanged) when it does not start with one.
int take_index(std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 6 || digits >= text.size() || text[digits] != '.') return -1;
  const int index = std::stoi(text.substr(0, digits));
  text.erase(0, digits + 1);
  return index;
}

// Takes "<prefix><n>." off the front of `text`; -1 when it is not there.
int take_prefixed_index(std::string& text, const std::string& prefix) {
  if (!starts_with(text, prefix)) return -1;
  std::string rest = text.substr(prefix.size());
  const int index = take_index(rest);
  if (index >= 0) text = rest;
  return index;
}

[[noreturn]] void fail(Component component, const std::string& name, const std::string& why) {
  throw Error(std::string("export to the single-file layout: ") + component_name(component) + " tensor '" + name +
              "' " + why);
}

// What the flat original numbering needs to know of the nested diffusers one: res blocks per
// level, and which levels carry attention or a down/upsampler.
struct LevelShape {
  int resnets = 0;
  bool attention = false;
  bool resampler = false;
};

std::map<int, LevelShape> level_shapes(const TensorMap& tensors, const std::string& blocks_prefix,
                                       const std::string& resampler) {
  std::map<int, LevelShape> levels;
  for (const auto& [name, tensor] : tensors) {
    std::string rest = name;
    const int level = take_prefixed_index(rest, blocks_prefix);
    if (level < 0) continue;
    auto& shape = levels[level];
    const int resnet = take_prefixed_index(rest, "resnets.");
    if (resnet >= 0) shape.resnets = std::max(shape.resnets, resnet + 1);
    shape.attention = shape.attention || starts_with(rest, "attentions.");
    shape.resampler = shape.resampler || starts_with(rest, resampler);
  }
  return levels;
}

std::string unet_block_part(const std::string& rest, const std::string& original_block, const std::string& name) {
  std::string inner = rest;
  const int resnet = take_prefixed_index(inner, "resnets.");
  if (resnet >= 0) {
    const auto renamed = rename_prefix(inner, kUnetResnet);
    if (!renamed) fail(Component::Unet, name, "is not a res block tensor the original has");
    return original_block + std::to_string(resnet) + ".0." + *renamed;
  }
  const int attention = take_prefixed_index(inner, "attentions.");
  if (attention >= 0) return original_block + std::to_string(attention) + ".1." + inner;
  return {};
}

std::string unet_name(const std::string& name, const TensorMap& tensors) {
  if (auto top = rename_prefix(name, kUnetTopLevel)) return *top;
  std::string rest = name;
  if (int level = take_prefixed_index(rest, "down_blocks."); level >= 0) {
    const auto levels = level_shapes(tensors, "down_blocks.", "downsamplers.");
    int first = 1;  // input_blocks.0 is conv_in
    for (int l = 0; l < level; ++l) first += levels.at(l).resnets + (levels.at(l).resampler ? 1 : 0);
    std::string inner = rest;
    if (take_prefixed_index(inner, "downsamplers.") == 0 && starts_with(inner, "conv.")) {
      return "input_blocks." + std::to_string(first + levels.at(level).resnets) + ".0.op." + inner.substr(5);
    }
    // Block k of this level is input_blocks.(first + k): shift the within-level index.
    std::string shifted = rest;
    for (const char* kind : {"resnets.", "attentions."}) {
      std::string probe = rest;
      const int k = take_prefixed_index(probe, kind);
      if (k >= 0) shifted = std::string(kind) + std::to_string(first + k) + "." + probe;
    }
    auto result = unet_block_part(shifted, "input_blocks.", name);
    if (!result.empty()) return result;
  } else if (int level = take_prefixed_index(rest, "up_blocks."); level >= 0) {
    const auto levels = level_shapes(tensors, "up_blocks.", "upsamplers.");
    int first = 0;
    for (int l = 0; l < level; ++l) first += levels.at(l).resnets;
    const auto& shape = levels.at(level);
    std::string inner = rest;
    if (take_prefixed_index(inner, "upsamplers.") == 0 && starts_with(inner, "conv.")) {
      // The upsampler follows the level's last block, after its attention when it has one.
      return "output_blocks." + std::to_string(first + shape.resnets - 1) + (shape.attention ? ".2." : ".1.") + inner;
    }
    std::string shifted = rest;
    for (const char* kind : {"resnets.", "attentions."}) {
      std::string probe = rest;
      const int k = take_prefixed_index(probe, kind);
      if (k >= 0) shifted = std::string(kind) + std::to_string(first + k) + "." + probe;
    }
    auto result = unet_block_part(shifted, "output_blocks.", name);
    if (!result.empty()) return result;
  } else if (starts_with(rest, "mid_block.")) {
    rest.erase(0, 10);
    std::string inner = rest;
    // The middle block alternates res block, attention, res block: resnets k -> 2k, attentions k -> 2k+1.
    if (int k = take_prefixed_index(inner, "resnets."); k >= 0) {
      if (auto renamed = rename_prefix(inner, kUnetResnet)) return "middle_block." + std::to_string(2 * k) + "." + *renamed;
    } else if (int a = take_prefixed_index(inner, "attentions."); a >= 0) {
      return "middle_block." + std::to_string(2 * a + 1) + "." + inner;
    }
  }
  fail(Component::Unet, name, "has no place in the original UNet layout");
}

std::string vae_name(const std::string& name, const TensorMap& tensors) {
  if (auto top = rename_prefix(name, kVaeTopLevel)) return *top;
  const bool encoder = starts_with(name, "encoder.");
  if (!encoder && !starts_with(name, "decoder.")) fail(Component::Vae, name, "is neither encoder nor decoder");
  const std::string coder = encoder ? "encoder." : "decoder.";
  std::string rest = name.substr(coder.size());

  if (starts_with(rest, "mid_block.")) {
    rest.erase(0, 10);
    if (int k = take_prefixed_index(rest, "resnets."); k >= 0) {
      if (auto inner = rename_prefix(rest, kVaeResnet)) return coder + "mid.block_" + std::to_string(k + 1) + "." + *inner;
    } else if (take_prefixed_index(rest, "attentions.") == 0) {
      if (auto inner = rename_prefix(rest, kVaeAttention)) return coder + "mid.attn_1." + *inner;
    }
    fail(Component::Vae, name, "is not a mid block tensor the original has");
  }
  int level = take_prefixed_index(rest, encoder ? "down_blocks." : "up_blocks.");
  if (level < 0) fail(Component::Vae, name, "has no place in the original VAE layout");
  if (!encoder) {
    // The original counts decoder levels from the highest resolution, diffusers from the lowest.
    int levels = 0;
    for (const auto& [other, tensor] : tensors) {
      std::string probe = other;
      levels = std::max(levels, take_prefixed_index(probe, "decoder.up_blocks.") + 1);
    }
    level = levels - 1 - level;
  }
  const std::string block = coder + (encoder ? "down." : "up.") + std::to_string(level) + ".";
  if (int j = take_prefixed_index(rest, "resnets."); j >= 0) {
    if (auto inner = rename_prefix(rest, kVaeResnet)) return block + "block." + std::to_string(j) + "." + *inner;
  } else if (take_prefixed_index(rest, encoder ? "downsamplers." : "upsamplers.") == 0 && starts_with(rest, "conv.")) {
    return block + (encoder ? "downsample." : "upsample.") + rest;
  }
  fail(Component::Vae, name, "has no place in the original VAE layout");
}

bool is_buffer(const std::string& name) {
  return name.size() >= 12 && name.compare(name.size() - 12, 12, "position_ids") == 0;
}

}  // namespace

std::string ldm_name(Component component, const std::string& name, const TensorMap& component_tensors) {
  switch (component) {
    case Component::Unet: return "model.diffusion_model." + unet_name(name, component_tensors);
    case Component::Vae: return "first_stage_model." + vae_name(name, component_tensors);
    case Component::TextEncoder:
      if (!starts_with(name, "text_model.")) fail(component, name, "is not a CLIPTextModel tensor (text_model.*)");
      return "cond_stage_model.transformer." + name;
  }
  fail(component, name, "belongs to no known component");
}

TensorMap export_ldm_checkpoint(const TensorMap& unet, const TensorMap& vae, const TensorMap& text_encoder) {
  TensorMap result;
  const std::pair<Component, const TensorMap*> components[] = {
      {Component::Unet, &unet}, {Component::Vae, &vae}, {Component::TextEncoder, &text_encoder}};
  for (const auto& [component, tensors] : components) {
    for (const auto& [name, tensor] : *tensors) {
      if (is_buffer(name)) continue;
      const std::string original = ldm_name(component, name, *tensors);
      at::Tensor value = tensor;
      // The VAE's mid attention projections are 1x1 convolutions in the original.
      const bool attention_weight = component == Component::Vae && original.find(".mid.attn_1.") != std::string::npos &&
                                    original.find(".norm.") == std::string::npos && tensor.dim() == 2;
      if (attention_weight) value = tensor.reshape({tensor.size(0), tensor.size(1), 1, 1});
      if (!result.emplace(original, value).second) {
        fail(component, name, "maps to '" + original + "', which another tensor already took");
      }
    }
  }
  return result;
}

}  // namespace diffuse::io
