#include "io/ldm_names.h"

#include <stdexcept>

namespace diffuse::io {

namespace {

using NameParts = std::vector<std::pair<std::string, std::string>>;  // (original, diffusers)

// UNet tensors outside the numbered blocks, in the encoder half a ControlNet copies too. label_emb
// is SDXL's size/pooled-text embedding.
const NameParts kEncoderTopLevel = {
    {"time_embed.0.", "time_embedding.linear_1."}, {"time_embed.2.", "time_embedding.linear_2."},
    {"input_blocks.0.0.", "conv_in."},              {"label_emb.0.0.", "add_embedding.linear_1."},
    {"label_emb.0.2.", "add_embedding.linear_2."},
};
// The UNet's output head.
const NameParts kUnetOutput = {{"out.0.", "conv_norm_out."}, {"out.2.", "conv_out."}};
// Inside a UNet ResBlock (openaimodel.py's nn.Sequential indices -> diffusers ResnetBlock2D).
const NameParts kUnetResnet = {
    {"in_layers.0.", "norm1."},  {"in_layers.2.", "conv1."},  {"emb_layers.1.", "time_emb_proj."},
    {"out_layers.0.", "norm2."}, {"out_layers.3.", "conv2."}, {"skip_connection.", "conv_shortcut."},
};
// Spatial transformers keep their inner names in diffusers.
const NameParts kUnetTransformer = {
    {"norm.", "norm."}, {"proj_in.", "proj_in."}, {"proj_out.", "proj_out."},
    {"transformer_blocks.", "transformer_blocks."},
};

const NameParts kVaeTopLevel = {
    {"encoder.conv_in.", "encoder.conv_in."},   {"encoder.conv_out.", "encoder.conv_out."},
    {"encoder.norm_out.", "encoder.conv_norm_out."}, {"decoder.conv_in.", "decoder.conv_in."},
    {"decoder.conv_out.", "decoder.conv_out."}, {"decoder.norm_out.", "decoder.conv_norm_out."},
    {"quant_conv.", "quant_conv."},             {"post_quant_conv.", "post_quant_conv."},
};
const NameParts kVaeResnet = {
    {"norm1.", "norm1."}, {"conv1.", "conv1."}, {"norm2.", "norm2."},
    {"conv2.", "conv2."}, {"nin_shortcut.", "conv_shortcut."},
};
// The VAE's mid attention: 1x1 convs in the original, linear layers in diffusers.
const NameParts kVaeAttention = {
    {"norm.", "group_norm."}, {"q.", "to_q."}, {"k.", "to_k."}, {"v.", "to_v."}, {"proj_out.", "to_out.0."},
};

// OpenCLIP -> HF CLIPTextModel.
const NameParts kOpenClipTopLevel = {
    {"positional_embedding", "text_model.embeddings.position_embedding.weight"},
    {"token_embedding.weight", "text_model.embeddings.token_embedding.weight"},
    {"ln_final.weight", "text_model.final_layer_norm.weight"},
    {"ln_final.bias", "text_model.final_layer_norm.bias"},
};
const NameParts kOpenClipLayer = {
    {"ln_1.", "layer_norm1."}, {"ln_2.", "layer_norm2."}, {"mlp.c_fc.", "mlp.fc1."},
    {"mlp.c_proj.", "mlp.fc2."}, {"attn.out_proj.", "self_attn.out_proj."},
};

bool is_module(const std::string& name) { return !name.empty() && name.back() == '.'; }

// The rows of one section; original names are given without the section's prefix.
class SectionRows {
 public:
  SectionRows(const LdmSection& section, std::vector<LdmNamePair>& pairs) : section_(section), pairs_(pairs) {}

  LdmNamePair& add(const std::string& original, const std::string& diffusers, Transform transform = Transform::None,
                   int chunk = 0) {
    return pairs_.emplace_back(
        LdmNamePair{section_.prefix + original, section_.component, diffusers, transform, chunk});
  }
  void add_parts(const std::string& original, const std::string& diffusers, const NameParts& parts) {
    for (const auto& [original_part, diffusers_part] : parts) add(original + original_part, diffusers + diffusers_part);
  }
  void skip(const std::string& original) { add(original, "").skipped = true; }
  void skip_diffusers_only(const std::string& diffusers) {
    pairs_.push_back({"", section_.component, diffusers, Transform::None, 0, /*skipped=*/true});
  }

 private:
  const LdmSection& section_;
  std::vector<LdmNamePair>& pairs_;
};

// The encoder half: top-level tensors, the down path and the middle block (a UNet's and a
// ControlNet's alike).
void add_unet_encoder(SectionRows& rows, const UnetBlocks& blocks) {
  rows.add_parts("", "", kEncoderTopLevel);
  // Both paths run through one flat block sequence in the original, nested per level in diffusers.
  int block = 1;  // input_blocks.0 is conv_in
  for (size_t l = 0; l < blocks.down.size(); ++l) {
    const UnetLevel& level = blocks.down[l];
    const std::string down = indexed_name("down_blocks.", l);
    for (int r = 0; r < level.resnets; ++r, ++block) {
      const std::string original = indexed_name("input_blocks.", block);
      rows.add_parts(original + "0.", indexed_name(down + "resnets.", r), kUnetResnet);
      if (level.attention) rows.add_parts(original + "1.", indexed_name(down + "attentions.", r), kUnetTransformer);
    }
    if (level.resampler) rows.add(indexed_name("input_blocks.", block++) + "0.op.", down + "downsamplers.0.conv.");
  }

  for (int r = 0, j = 0; r < blocks.mid_resnets; ++r) {
    rows.add_parts(indexed_name("middle_block.", j++), indexed_name("mid_block.resnets.", r), kUnetResnet);
    if (blocks.mid_attention && r + 1 < blocks.mid_resnets) {
      rows.add_parts(indexed_name("middle_block.", j++), indexed_name("mid_block.attentions.", r), kUnetTransformer);
    }
  }
}

void add_unet(SectionRows rows, const UnetBlocks& blocks) {
  add_unet_encoder(rows, blocks);
  rows.add_parts("", "", kUnetOutput);
  int block = 0;
  for (size_t l = 0; l < blocks.up.size(); ++l) {
    const UnetLevel& level = blocks.up[l];
    const std::string up = indexed_name("up_blocks.", l);
    for (int r = 0; r < level.resnets; ++r, ++block) {
      const std::string original = indexed_name("output_blocks.", block);
      rows.add_parts(original + "0.", indexed_name(up + "resnets.", r), kUnetResnet);
      if (level.attention) rows.add_parts(original + "1.", indexed_name(up + "attentions.", r), kUnetTransformer);
      // The upsampler follows the level's last block, after its transformer when it has one.
      if (level.resampler && r + 1 == level.resnets) {
        rows.add(original + (level.attention ? "2." : "1.") + "conv.", up + "upsamplers.0.conv.");
      }
    }
  }
}

void add_vae(SectionRows rows, const VaeLevels& levels) {
  rows.add_parts("", "", kVaeTopLevel);
  rows.skip("loss.");  // training-time LPIPS / discriminator weights
  for (const std::string coder : {"encoder.", "decoder."}) {
    for (int r = 0; r < 2; ++r) {
      rows.add_parts(coder + "mid.block_" + std::to_string(r + 1) + ".", indexed_name(coder + "mid_block.resnets.", r),
                     kVaeResnet);
    }
    for (const auto& [original, diffusers] : kVaeAttention) {
      const std::string attention = coder + "mid_block.attentions.0." + diffusers;
      rows.add(coder + "mid.attn_1." + original + "bias", attention + "bias");
      rows.add(coder + "mid.attn_1." + original + "weight", attention + "weight",
               original == "norm." ? Transform::None : Transform::ConvToLinear);
    }
  }
  const auto add_level = [&](const std::string& original, const std::string& diffusers, const std::string& sampler,
                             const std::string& diffusers_sampler) {
    for (int r = 0; r < levels.resnets; ++r) {
      rows.add_parts(indexed_name(original + "block.", r), indexed_name(diffusers + "resnets.", r), kVaeResnet);
    }
    rows.add(original + sampler + ".conv.", diffusers + diffusers_sampler + ".0.conv.");
  };
  for (int l = 0; l < levels.encoder; ++l) {
    add_level(indexed_name("encoder.down.", l), indexed_name("encoder.down_blocks.", l), "downsample", "downsamplers");
  }
  // The original counts decoder levels from the highest resolution, diffusers from the lowest.
  for (int l = 0; l < levels.decoder; ++l) {
    add_level(indexed_name("decoder.up.", l), indexed_name("decoder.up_blocks.", levels.decoder - 1 - l), "upsample",
              "upsamplers");
  }
}

void add_clip(SectionRows rows) {
  // A buffer (arange(77)), not a parameter; some merged checkpoints even carry it corrupted.
  rows.add("text_model.embeddings.position_ids", "text_model.embeddings.position_ids").skipped = true;
  rows.add("text_model.", "text_model.");
  // Older transformers versions saved CLIPTextModel without the text_model level.
  rows.skip("embeddings.position_ids");
  rows.add("", "text_model.").alias = true;
}

void add_open_clip(SectionRows rows, const TextEncoderLayers& layers) {
  rows.add_parts("", "", kOpenClipTopLevel);
  // Both serve CLIP's image-text contrastive head. SD 2.x's text-to-image uses neither, and its
  // diffusers text encoder (CLIPTextModel) has neither; SDXL's pooled embedding is the projection's
  // output (CLIPTextModelWithProjection, whose nn.Linear holds the transpose).
  if (layers.projection) {
    rows.add("text_projection", "text_projection.weight", Transform::Transpose);
  } else {
    rows.skip("text_projection");
  }
  rows.skip("logit_scale");
  rows.skip_diffusers_only("text_model.embeddings.position_ids");  // a buffer OpenCLIP does not store
  for (int l = 0; l < layers.layers; ++l) {
    const std::string original = indexed_name("transformer.resblocks.", l);
    if (l >= layers.used) {  // past the layer SD 2.x conditions on: neither it nor diffusers runs it
      rows.skip(original);
      continue;
    }
    const std::string diffusers = indexed_name("text_model.encoder.layers.", l);
    rows.add_parts(original, diffusers, kOpenClipLayer);
    for (const std::string kind : {"weight", "bias"}) {
      int chunk = 0;
      for (const char* projection : {"q_proj.", "k_proj.", "v_proj."}) {
        rows.add(original + "attn.in_proj_" + kind, diffusers + "self_attn." + projection + kind, Transform::ChunkOf3,
                 chunk++);
      }
    }
  }
}

// `name` itself, then each of its prefixes that ends in '.', longest first.
std::vector<std::string> lookup_candidates(const std::string& name) {
  std::vector<std::string> candidates{name};
  for (size_t end = name.empty() ? 0 : name.size() - 1; end > 0; --end) {
    if (name[end - 1] == '.') candidates.push_back(name.substr(0, end));
  }
  return candidates;
}

std::string translate(const std::string& from, const std::string& to, const std::string& name) {
  if (to.empty()) return "";
  return is_module(from) ? to + name.substr(from.size()) : to;
}

}  // namespace

const char* component_name(Component component) {
  switch (component) {
    case Component::Unet: return "unet";
    case Component::Vae: return "vae";
    case Component::TextEncoder: return "text_encoder";
    case Component::TextEncoder2: return "text_encoder_2";
    case Component::ControlNet: return "controlnet";
  }
  return "?";
}

LdmNameTable::LdmNameTable(std::vector<LdmSection> sections, std::vector<LdmNamePair> pairs)
    : sections_(std::move(sections)), pairs_(std::move(pairs)) {
  for (size_t i = 0; i < pairs_.size(); ++i) {
    const LdmNamePair& pair = pairs_[i];
    if (!pair.original.empty() && !pair.diffusers.empty() && is_module(pair.original) != is_module(pair.diffusers)) {
      throw std::logic_error("LDM name table: '" + pair.original + "' and '" + pair.diffusers +
                             "' are not both modules or both tensors");
    }
    if (!pair.original.empty()) by_original_[pair.original].push_back(i);
    if (pair.diffusers.empty() || pair.alias) continue;
    if (!by_diffusers_.emplace(std::make_pair(pair.component, pair.diffusers), i).second) {
      throw std::logic_error(std::string("LDM name table: two original names for ") + component_name(pair.component) +
                             " '" + pair.diffusers + "'");
    }
  }
}

std::vector<LdmNameMatch> LdmNameTable::to_diffusers(const std::string& original) const {
  std::vector<LdmNameMatch> matches;
  for (const auto& candidate : lookup_candidates(original)) {
    const auto found = by_original_.find(candidate);
    if (found == by_original_.end()) continue;
    for (const size_t i : found->second) {
      matches.push_back({&pairs_[i], translate(pairs_[i].original, pairs_[i].diffusers, original)});
    }
    break;
  }
  return matches;
}

std::optional<LdmNameMatch> LdmNameTable::to_original(Component component, const std::string& diffusers) const {
  for (const auto& candidate : lookup_candidates(diffusers)) {
    const auto found = by_diffusers_.find({component, candidate});
    if (found == by_diffusers_.end()) continue;
    const LdmNamePair& pair = pairs_[found->second];
    return LdmNameMatch{&pair, translate(pair.diffusers, pair.original, diffusers)};
  }
  return std::nullopt;
}

const LdmSection* LdmNameTable::section_of(const std::string& original) const {
  for (const auto& section : sections_) {
    if (original.compare(0, section.prefix.size(), section.prefix) == 0) return &section;
  }
  return nullptr;
}

LdmNameTable ldm_name_table(const LdmStructure& structure) {
  std::vector<std::pair<Component, const TextEncoderLayers*>> text_encoders = {
      {Component::TextEncoder, &structure.text_encoder}};
  if (structure.text_encoder_2) text_encoders.emplace_back(Component::TextEncoder2, &*structure.text_encoder_2);

  std::vector<LdmSection> sections = {{kLdmUnetPrefix, Component::Unet}, {kLdmVaePrefix, Component::Vae}};
  for (const auto& [component, layers] : text_encoders) sections.push_back({layers->prefix, component});
  std::vector<LdmNamePair> pairs;
  add_unet(SectionRows(sections[0], pairs), structure.unet);
  add_vae(SectionRows(sections[1], pairs), structure.vae);
  for (size_t i = 0; i < text_encoders.size(); ++i) {
    const TextEncoderLayers& layers = *text_encoders[i].second;
    const SectionRows rows(sections[2 + i], pairs);
    if (layers.layout == TextEncoderLayout::Clip) {
      add_clip(rows);
    } else {
      add_open_clip(rows, layers);
    }
  }
  return LdmNameTable(std::move(sections), std::move(pairs));
}

LdmNameTable ldm_controlnet_name_table(const ControlNetStructure& structure) {
  std::vector<LdmSection> sections = {{structure.prefix, Component::ControlNet}};
  std::vector<LdmNamePair> pairs;
  SectionRows rows(sections[0], pairs);
  add_unet_encoder(rows, structure.encoder);
  for (int n = 0; n < structure.zero_convs; ++n) {
    rows.add(indexed_name("zero_convs.", n) + "0.", indexed_name("controlnet_down_blocks.", n));
  }
  rows.add("middle_block_out.0.", "controlnet_mid_block.");
  // The hint encoder by the order of its convolutions, whatever their indices: the first reads the
  // image, the last is the zero conv to the UNet's width, those between are diffusers' blocks.
  const auto& convs = structure.hint_convs;
  for (size_t i = 0; i < convs.size(); ++i) {
    const std::string diffusers = i == 0                 ? std::string("conv_in.")
                                  : i + 1 == convs.size() ? std::string("conv_out.")
                                                          : indexed_name("blocks.", i - 1);
    rows.add(indexed_name("input_hint_block.", convs[i]), "controlnet_cond_embedding." + diffusers);
  }
  return LdmNameTable(std::move(sections), std::move(pairs));
}

}  // namespace diffuse::io
