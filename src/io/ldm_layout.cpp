#include "io/ldm_layout.h"

#include <cctype>
#include <map>
#include <set>

#include "util/error.h"

namespace diffuse::io {

namespace {

using nlohmann::json;

const std::string kUnetPrefix = "model.diffusion_model.";
const std::string kVaePrefix = "first_stage_model.";
const std::string kClipPrefix = "cond_stage_model.transformer.";  // SD 1.x: HF CLIPTextModel names
const std::string kOpenClipPrefix = "cond_stage_model.model.";   // SD 2.x: OpenCLIP names

using NamePairs = std::vector<std::pair<std::string, std::string>>;

// UNet tensors outside the numbered blocks. label_emb is SDXL's size/pooled-text embedding.
const NamePairs kUnetTopLevel = {
    {"time_embed.0.", "time_embedding.linear_1."}, {"time_embed.2.", "time_embedding.linear_2."},
    {"input_blocks.0.0.", "conv_in."},              {"out.0.", "conv_norm_out."},
    {"out.2.", "conv_out."},                        {"label_emb.0.0.", "add_embedding.linear_1."},
    {"label_emb.0.2.", "add_embedding.linear_2."},
};
// Inside a UNet ResBlock (openaimodel.py's nn.Sequential indices -> diffusers ResnetBlock2D).
const NamePairs kUnetResnet = {
    {"in_layers.0.", "norm1."},  {"in_layers.2.", "conv1."},  {"emb_layers.1.", "time_emb_proj."},
    {"out_layers.0.", "norm2."}, {"out_layers.3.", "conv2."}, {"skip_connection.", "conv_shortcut."},
};
// Spatial transformers keep their inner names in diffusers.
const std::vector<std::string> kUnetAttentionParts = {"norm.", "proj_in.", "proj_out.", "transformer_blocks."};

const NamePairs kVaeResnet = {
    {"norm1.", "norm1."}, {"conv1.", "conv1."}, {"norm2.", "norm2."},
    {"conv2.", "conv2."}, {"nin_shortcut.", "conv_shortcut."},
};
// The VAE's mid attention: 1x1 convs in the original, linear layers in diffusers.
const NamePairs kVaeAttention = {
    {"norm.", "group_norm."}, {"q.", "to_q."}, {"k.", "to_k."}, {"v.", "to_v."}, {"proj_out.", "to_out.0."},
};
const NamePairs kVaeTopLevel = {
    {"encoder.conv_in.", "encoder.conv_in."},   {"encoder.conv_out.", "encoder.conv_out."},
    {"encoder.norm_out.", "encoder.conv_norm_out."}, {"decoder.conv_in.", "decoder.conv_in."},
    {"decoder.conv_out.", "decoder.conv_out."}, {"decoder.norm_out.", "decoder.conv_norm_out."},
    {"quant_conv.", "quant_conv."},             {"post_quant_conv.", "post_quant_conv."},
};

// OpenCLIP -> HF CLIPTextModel.
const NamePairs kOpenClipTopLevel = {
    {"positional_embedding", "text_model.embeddings.position_embedding.weight"},
    {"token_embedding.weight", "text_model.embeddings.token_embedding.weight"},
    {"ln_final.weight", "text_model.final_layer_norm.weight"},
    {"ln_final.bias", "text_model.final_layer_norm.bias"},
};
const NamePairs kOpenClipLayer = {
    {"ln_1.", "layer_norm1."}, {"ln_2.", "layer_norm2."}, {"mlp.c_fc.", "mlp.fc1."},
    {"mlp.c_proj.", "mlp.fc2."}, {"attn.out_proj.", "self_attn.out_proj."},
};

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

// Replaces a leading `from` of `text` by `to` for the first matching pair.
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

class Planner {
 public:
  Planner(const std::string& file, LdmPlan& plan) : file_(file), plan_(plan) {}

  void add(const std::string& source, Component component, const std::string& target,
           Transform transform = Transform::None, int chunk = 0) {
    if (!targets_.insert({component, target}).second) {
      throw Error(file_ + ": two tensors map to " + component_name(component) + " '" + target + "' (second: '" +
                  source + "')");
    }
    plan_.renames.push_back({source, component, target, transform, chunk});
  }
  [[noreturn]] void fail(const std::string& key, const std::string& why) const {
    throw Error(file_ + ": tensor '" + key + "' has no diffusers counterpart (" + why + ")");
  }
  [[noreturn]] void fail(const std::string& why) const { throw Error(file_ + ": " + why); }

 private:
  const std::string& file_;
  LdmPlan& plan_;
  std::set<std::pair<Component, std::string>> targets_;
};

// ---- UNet ----------------------------------------------------------------------------------------

enum class UnetPart { Resnet, Attention, Downsampler, Upsampler };

struct BlockTensor {
  std::string source;
  std::string rest;  // name inside the sub-module, e.g. "in_layers.0.weight"
};
// blocks[i][j]: tensors of input_blocks.i.j (or middle_block.j with i = 0, or output_blocks.i.j).
using UnetBlocks = std::map<int, std::map<int, std::vector<BlockTensor>>>;

UnetPart classify(const Planner& planner, const std::vector<BlockTensor>& tensors) {
  std::optional<UnetPart> part;
  for (const auto& tensor : tensors) {
    UnetPart this_part;
    if (rename_prefix(tensor.rest, kUnetResnet)) {
      this_part = UnetPart::Resnet;
    } else if (starts_with(tensor.rest, "op.")) {
      this_part = UnetPart::Downsampler;
    } else if (starts_with(tensor.rest, "conv.")) {
      this_part = UnetPart::Upsampler;
    } else {
      bool attention = false;
      for (const auto& prefix : kUnetAttentionParts) attention = attention || starts_with(tensor.rest, prefix);
      if (!attention) planner.fail(tensor.source, "unknown UNet sub-module");
      this_part = UnetPart::Attention;
    }
    if (part && *part != this_part) planner.fail(tensor.source, "mixes sub-module kinds in one block");
    part = this_part;
  }
  return *part;
}

void add_unet_part(Planner& planner, UnetPart part, const std::vector<BlockTensor>& tensors,
                   const std::string& target_prefix) {
  for (const auto& tensor : tensors) {
    std::string inner = tensor.rest;
    if (part == UnetPart::Resnet) inner = *rename_prefix(tensor.rest, kUnetResnet);
    if (part == UnetPart::Downsampler) inner = "conv." + tensor.rest.substr(3);  // "op." -> "conv."
    planner.add(tensor.source, Component::Unet, target_prefix + inner);
  }
}

// The block structure (levels, res blocks per level, where attention sits) is read off the keys:
// the original numbers its blocks flatly, diffusers nests them per resolution level.
void plan_unet(Planner& planner, const std::vector<std::string>& keys) {
  UnetBlocks input, middle, output;
  for (const auto& key : keys) {
    if (!starts_with(key, kUnetPrefix)) continue;
    const std::string name = key.substr(kUnetPrefix.size());
    if (auto target = rename_prefix(name, kUnetTopLevel)) {
      planner.add(key, Component::Unet, *target);
      continue;
    }
    std::string rest = name;
    UnetBlocks* blocks = nullptr;
    int i = 0;
    if (starts_with(rest, "input_blocks.")) {
      rest.erase(0, 13);
      blocks = &input;
      i = take_index(rest);
    } else if (starts_with(rest, "output_blocks.")) {
      rest.erase(0, 14);
      blocks = &output;
      i = take_index(rest);
    } else if (starts_with(rest, "middle_block.")) {
      rest.erase(0, 13);
      blocks = &middle;
    }
    const int j = blocks && i >= 0 ? take_index(rest) : -1;
    if (j < 0) planner.fail(key, "not a known UNet tensor");
    (*blocks)[i][j].push_back({key, rest});
  }

  // Down path: each level is res blocks (each maybe followed by attention), then a downsampler,
  // except the last level.
  std::vector<int> down_resnets{0};
  int expected = 1;
  for (const auto& [i, parts] : input) {
    if (i != expected) planner.fail("UNet has no input_blocks." + std::to_string(expected));
    ++expected;
    const std::string level = std::to_string(down_resnets.size() - 1);
    const std::string layer = std::to_string(down_resnets.back());
    for (const auto& [j, tensors] : parts) {
      const UnetPart part = classify(planner, tensors);
      if (j == 0 && part == UnetPart::Resnet) {
        add_unet_part(planner, part, tensors, "down_blocks." + level + ".resnets." + layer + ".");
      } else if (j == 0 && part == UnetPart::Downsampler && parts.size() == 1) {
        add_unet_part(planner, part, tensors, "down_blocks." + level + ".downsamplers.0.");
      } else if (j == 1 && part == UnetPart::Attention) {
        add_unet_part(planner, part, tensors, "down_blocks." + level + ".attentions." + layer + ".");
      } else {
        planner.fail(tensors.front().source, "unexpected module in a down block");
      }
    }
    if (classify(planner, parts.begin()->second) == UnetPart::Downsampler) {
      down_resnets.push_back(0);
    } else {
      ++down_resnets.back();
    }
  }

  int resnets = 0, attentions = 0;
  for (const auto& [j, tensors] : middle[0]) {
    const UnetPart part = classify(planner, tensors);
    if (part == UnetPart::Resnet) {
      add_unet_part(planner, part, tensors, "mid_block.resnets." + std::to_string(resnets++) + ".");
    } else if (part == UnetPart::Attention) {
      add_unet_part(planner, part, tensors, "mid_block.attentions." + std::to_string(attentions++) + ".");
    } else {
      planner.fail(tensors.front().source, "unexpected module in the middle block");
    }
  }

  // Up path: each level is res blocks (each maybe with attention); the last block of every level
  // but the final one also carries the upsampler.
  std::vector<int> up_resnets{0};
  expected = 0;
  for (const auto& [i, parts] : output) {
    if (i != expected) planner.fail("UNet has no output_blocks." + std::to_string(expected));
    ++expected;
    const std::string level = std::to_string(up_resnets.size() - 1);
    const std::string layer = std::to_string(up_resnets.back());
    bool upsampled = false;
    for (const auto& [j, tensors] : parts) {
      const UnetPart part = classify(planner, tensors);
      if (j == 0 && part == UnetPart::Resnet) {
        add_unet_part(planner, part, tensors, "up_blocks." + level + ".resnets." + layer + ".");
      } else if (j == 1 && part == UnetPart::Attention) {
        add_unet_part(planner, part, tensors, "up_blocks." + level + ".attentions." + layer + ".");
      } else if (j >= 1 && part == UnetPart::Upsampler) {
        add_unet_part(planner, part, tensors, "up_blocks." + level + ".upsamplers.0.");
        upsampled = true;
      } else {
        planner.fail(tensors.front().source, "unexpected module in an up block");
      }
    }
    ++up_resnets.back();
    if (upsampled) up_resnets.push_back(0);
  }

  // Diffusers' up level k mirrors down level n-1-k with one res block more (the skip from the
  // downsampler); anything else means blocks are missing from the file.
  bool consistent = !input.empty() && up_resnets.size() == down_resnets.size();
  for (size_t k = 0; consistent && k < up_resnets.size(); ++k) {
    consistent = up_resnets[k] == down_resnets[down_resnets.size() - 1 - k] + 1;
  }
  if (!consistent) planner.fail("UNet blocks are inconsistent (input_blocks and output_blocks do not mirror)");
}

// ---- VAE -----------------------------------------------------------------------------------------

void plan_vae(Planner& planner, const std::vector<std::string>& keys) {
  int decoder_levels = 0;
  for (const auto& key : keys) {
    std::string rest = key;
    if (!starts_with(rest, kVaePrefix + "decoder.up.")) continue;
    rest.erase(0, kVaePrefix.size() + 11);
    decoder_levels = std::max(decoder_levels, take_index(rest) + 1);
  }

  for (const auto& key : keys) {
    if (!starts_with(key, kVaePrefix)) continue;
    const std::string name = key.substr(kVaePrefix.size());
    if (starts_with(name, "loss.")) continue;  // training-time LPIPS/discriminator weights
    if (auto target = rename_prefix(name, kVaeTopLevel)) {
      planner.add(key, Component::Vae, *target);
      continue;
    }
    const bool encoder = starts_with(name, "encoder.");
    if (!encoder && !starts_with(name, "decoder.")) planner.fail(key, "not a known VAE tensor");
    const std::string coder = encoder ? "encoder." : "decoder.";
    std::string rest = name.substr(coder.size());
    std::string target;
    Transform transform = Transform::None;

    if (starts_with(rest, "mid.block_")) {
      rest.erase(0, 10);
      const int index = take_index(rest);
      const auto inner = rename_prefix(rest, kVaeResnet);
      if (index < 1 || !inner) planner.fail(key, "unknown VAE mid block");
      target = "mid_block.resnets." + std::to_string(index - 1) + "." + *inner;
    } else if (starts_with(rest, "mid.attn_1.")) {
      rest.erase(0, 11);
      const auto inner = rename_prefix(rest, kVaeAttention);
      if (!inner) planner.fail(key, "unknown VAE attention tensor");
      target = "mid_block.attentions.0." + *inner;
      if (!starts_with(rest, "norm.") && rest.size() > 7 && rest.substr(rest.size() - 7) == ".weight") {
        transform = Transform::ConvToLinear;
      }
    } else if (starts_with(rest, encoder ? "down." : "up.")) {
      rest.erase(0, encoder ? 5 : 3);
      int level = take_index(rest);
      if (level < 0) planner.fail(key, "unknown VAE block");
      // The original decoder counts levels from the highest resolution, diffusers from the lowest.
      if (!encoder) level = decoder_levels - 1 - level;
      const std::string block = (encoder ? "down_blocks." : "up_blocks.") + std::to_string(level) + ".";
      const std::string sampler = encoder ? "downsample.conv." : "upsample.conv.";
      if (starts_with(rest, sampler)) {
        target = block + (encoder ? "downsamplers.0.conv." : "upsamplers.0.conv.") + rest.substr(sampler.size());
      } else if (starts_with(rest, "block.")) {
        rest.erase(0, 6);
        const int index = take_index(rest);
        const auto inner = rename_prefix(rest, kVaeResnet);
        if (index < 0 || !inner) planner.fail(key, "unknown VAE res block tensor");
        target = block + "resnets." + std::to_string(index) + "." + *inner;
      } else {
        planner.fail(key, "attention inside VAE down/up blocks is not supported by diffusers' AutoencoderKL");
      }
    } else {
      planner.fail(key, "not a known VAE tensor");
    }
    planner.add(key, Component::Vae, coder + target, transform);
  }
}

// ---- Text encoders -------------------------------------------------------------------------------

void plan_clip(Planner& planner, LdmPlan& plan, const std::vector<std::string>& keys) {
  for (const auto& key : keys) {
    if (!starts_with(key, kClipPrefix)) continue;
    std::string name = key.substr(kClipPrefix.size());
    // transformers < 4.? saved CLIPTextModel without the text_model level.
    if (!starts_with(name, "text_model.")) name = "text_model." + name;
    // A buffer (arange(77)), not a parameter; some merged checkpoints even carry it corrupted.
    if (name == "text_model.embeddings.position_ids") {
      plan.ignored.push_back(key);
      continue;
    }
    planner.add(key, Component::TextEncoder, name);
  }
}

// Which OpenCLIP layer the original config conditions on: every SD 2.x config says "penultimate".
std::string open_clip_layer(const json& original_config) {
  const json* node = &original_config;
  for (const char* step : {"model", "params", "cond_stage_config", "params", "layer"}) {
    if (!node->is_object() || !node->contains(step)) return "penultimate";
    node = &(*node)[step];
  }
  return node->is_string() ? node->get<std::string>() : "penultimate";
}

void plan_open_clip(Planner& planner, LdmPlan& plan, const std::vector<std::string>& keys,
                    const json& original_config) {
  const std::string blocks_prefix = kOpenClipPrefix + "transformer.resblocks.";
  int layers = 0;
  for (const auto& key : keys) {
    if (!starts_with(key, blocks_prefix)) continue;
    std::string rest = key.substr(blocks_prefix.size());
    layers = std::max(layers, take_index(rest) + 1);
  }
  // SD 2.x uses the penultimate layer's output (then ln_final). Diffusers' SD 2.x text encoder
  // is that truncated model, so the last block is dropped and both layouts load the same way.
  const bool drop_last = open_clip_layer(original_config) != "last";

  for (const auto& key : keys) {
    if (!starts_with(key, kOpenClipPrefix)) continue;
    const std::string name = key.substr(kOpenClipPrefix.size());
    if (auto target = rename_prefix(name, kOpenClipTopLevel)) {
      planner.add(key, Component::TextEncoder, *target);
      continue;
    }
    // CLIPTextModel (SD 2.x's diffusers text encoder) has neither: they serve CLIP's image-text
    // contrastive head, which text-to-image never uses.
    if (name == "text_projection" || name == "logit_scale") {
      plan.ignored.push_back(key);
      continue;
    }
    if (!starts_with(key, blocks_prefix)) planner.fail(key, "not a known OpenCLIP text tensor");
    std::string rest = key.substr(blocks_prefix.size());
    const int layer = take_index(rest);
    if (layer < 0) planner.fail(key, "not a known OpenCLIP text tensor");
    if (drop_last && layer == layers - 1) {
      plan.ignored.push_back(key);
      continue;
    }
    const std::string target_prefix = "text_model.encoder.layers." + std::to_string(layer) + ".";
    if (rest == "attn.in_proj_weight" || rest == "attn.in_proj_bias") {
      const std::string suffix = rest == "attn.in_proj_weight" ? "weight" : "bias";
      const char* projections[] = {"q_proj.", "k_proj.", "v_proj."};
      for (int chunk = 0; chunk < 3; ++chunk) {
        planner.add(key, Component::TextEncoder, target_prefix + "self_attn." + projections[chunk] + suffix,
                    Transform::ChunkOf3, chunk);
      }
      continue;
    }
    const auto inner = rename_prefix(rest, kOpenClipLayer);
    if (!inner) planner.fail(key, "not a known OpenCLIP text tensor");
    planner.add(key, Component::TextEncoder, target_prefix + *inner);
  }
}

}  // namespace

const char* component_name(Component component) {
  switch (component) {
    case Component::Unet: return "unet";
    case Component::Vae: return "vae";
    case Component::TextEncoder: return "text_encoder";
  }
  return "?";
}

LdmPlan plan_ldm_conversion(const std::vector<std::string>& keys, const json& original_config,
                            const std::string& file) {
  LdmPlan plan;
  Planner planner(file, plan);
  bool has_unet = false, has_vae = false, has_clip = false, has_open_clip = false;
  for (const auto& key : keys) {
    has_unet = has_unet || starts_with(key, kUnetPrefix);
    has_vae = has_vae || starts_with(key, kVaePrefix);
    has_clip = has_clip || starts_with(key, kClipPrefix);
    has_open_clip = has_open_clip || starts_with(key, kOpenClipPrefix);
  }
  if (!has_unet) planner.fail("no UNet tensors (" + kUnetPrefix + "*) in this checkpoint");
  if (!has_vae) planner.fail("no VAE tensors (" + kVaePrefix + "*) in this checkpoint");
  if (has_clip == has_open_clip) {
    planner.fail(has_clip ? "both a CLIP and an OpenCLIP text encoder (cond_stage_model.transformer.* and .model.*)"
                          : "no known text encoder (" + kClipPrefix + "* or " + kOpenClipPrefix + "*)");
  }
  plan.family = has_clip ? "sd1" : "sd2";

  plan_unet(planner, keys);
  plan_vae(planner, keys);
  if (has_clip) {
    plan_clip(planner, plan, keys);
  } else {
    plan_open_clip(planner, plan, keys, original_config);
  }

  // Everything outside the three components: EMA copies, noise-schedule buffers, VAE loss nets.
  std::set<std::string> planned;
  for (const auto& rename : plan.renames) planned.insert(rename.source);
  planned.insert(plan.ignored.begin(), plan.ignored.end());
  for (const auto& key : keys) {
    if (!planned.count(key)) plan.ignored.push_back(key);
  }
  return plan;
}

}  // namespace diffuse::io
