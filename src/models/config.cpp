#include "models/config.h"

#include <algorithm>
#include <set>
#include <variant>

#include "util/error.h"
#include "util/json_field.h"

namespace diffuse::models {

namespace {

using nlohmann::json;

// Every field is read through util's typed reader; its error gains the component's name.
template <typename T>
T value_or(const json& config, const char* key, T fallback, const char* component) {
  try {
    return json_field_or<T>(config, key, std::move(fallback));
  } catch (const InvalidParameter& e) {
    throw Error(std::string(component) + ": " + e.what());
  }
}

// diffusers lets several fields be one number for every level or a list per level.
std::vector<int> per_level(const json& config, const char* key, size_t levels, std::vector<int> fallback,
                           const char* component) {
  if (!json_has(config, key)) return fallback;
  const auto& value = config.at(key);
  if (value.is_number()) return std::vector<int>(levels, value_or<int>(config, key, 0, component));
  auto list = value_or<std::vector<int>>(config, key, {}, component);
  if (list.size() != levels) {
    throw Error(std::string(component) + ": '" + key + "' has " + std::to_string(list.size()) + " entries for " +
                std::to_string(levels) + " levels");
  }
  return list;
}

// The plain fields of a config: its key in the config.json diffusers or transformers writes, and the
// member it fills. Reading, writing and the defaults (the members' initialisers) all come from these
// tables; fields whose JSON form differs from the member (block types, legacy head counts, optional
// extras) are handled beside them.
template <typename Config>
struct Field {
  const char* key;
  std::variant<int Config::*, double Config::*, bool Config::*, std::string Config::*, std::vector<int> Config::*>
      member;
};

template <typename Config>
void read_fields(const json& config, const std::vector<Field<Config>>& fields, const char* component, Config& c) {
  for (const auto& field : fields) {
    std::visit(
        [&](auto member) {
          using T = std::decay_t<decltype(c.*member)>;
          c.*member = value_or<T>(config, field.key, c.*member, component);
        },
        field.member);
  }
}

template <typename Config>
void write_fields(const Config& c, const std::vector<Field<Config>>& fields, json& config) {
  for (const auto& field : fields) std::visit([&](auto member) { config[field.key] = c.*member; }, field.member);
}

const std::vector<Field<TextEncoderConfig>>& text_encoder_fields() {
  using C = TextEncoderConfig;
  static const std::vector<Field<C>> fields = {
      {"vocab_size", &C::vocab_size},
      {"hidden_size", &C::hidden_size},
      {"intermediate_size", &C::intermediate_size},
      {"num_hidden_layers", &C::num_layers},
      {"num_attention_heads", &C::num_heads},
      {"max_position_embeddings", &C::max_positions},
      {"hidden_act", &C::hidden_act},
      {"layer_norm_eps", &C::layer_norm_eps},
      {"bos_token_id", &C::bos_token_id},
      {"eos_token_id", &C::eos_token_id},
      {"pad_token_id", &C::pad_token_id},
  };
  return fields;
}

const std::vector<Field<UNetConfig>>& unet_fields() {
  using C = UNetConfig;
  static const std::vector<Field<C>> fields = {
      {"in_channels", &C::in_channels},
      {"out_channels", &C::out_channels},
      {"block_out_channels", &C::block_out_channels},
      {"layers_per_block", &C::layers_per_block},
      {"cross_attention_dim", &C::cross_attention_dim},
      {"use_linear_projection", &C::use_linear_projection},
      {"norm_num_groups", &C::norm_num_groups},
      {"norm_eps", &C::norm_eps},
      {"flip_sin_to_cos", &C::flip_sin_to_cos},
      {"freq_shift", &C::freq_shift},
      {"sample_size", &C::sample_size},
  };
  return fields;
}

const std::vector<Field<VaeConfig>>& vae_fields() {
  using C = VaeConfig;
  static const std::vector<Field<C>> fields = {
      {"in_channels", &C::in_channels},
      {"out_channels", &C::out_channels},
      {"latent_channels", &C::latent_channels},
      {"block_out_channels", &C::block_out_channels},
      {"layers_per_block", &C::layers_per_block},
      {"norm_num_groups", &C::norm_num_groups},
      {"scaling_factor", &C::scaling_factor},
      {"sample_size", &C::sample_size},
  };
  return fields;
}

const std::vector<Field<TinyAutoencoderConfig>>& tiny_autoencoder_fields() {
  using C = TinyAutoencoderConfig;
  static const std::vector<Field<C>> fields = {
      {"in_channels", &C::in_channels},
      {"out_channels", &C::out_channels},
      {"latent_channels", &C::latent_channels},
      {"num_encoder_blocks", &C::num_encoder_blocks},
      {"num_decoder_blocks", &C::num_decoder_blocks},
      {"upsampling_scaling_factor", &C::upsampling_scaling_factor},
      {"scaling_factor", &C::scaling_factor},
  };
  return fields;
}

const at::Tensor& require(const TensorMap& weights, const std::string& name, const char* component) {
  auto it = weights.find(name);
  if (it == weights.end()) {
    throw Error(std::string(component) + ": tensor '" + name + "' is missing, cannot infer the architecture");
  }
  return it->second;
}

// Counts distinct indices N in names "prefix.N.…".
int count_indexed(const TensorMap& weights, const std::string& prefix) {
  std::set<int> seen;
  for (const auto& [name, tensor] : weights) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const auto rest = name.substr(prefix.size());
    const auto dot = rest.find('.');
    if (dot == std::string::npos) continue;
    try {
      seen.insert(std::stoi(rest.substr(0, dot)));
    } catch (const std::exception&) {
    }
  }
  return static_cast<int>(seen.size());
}

bool has_prefix(const TensorMap& weights, const std::string& prefix) {
  auto it = weights.lower_bound(prefix);
  return it != weights.end() && it->first.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

TextEncoderConfig TextEncoderConfig::from_json(const json& config) {
  constexpr const char* kComponent = "text encoder config";
  TextEncoderConfig c;
  read_fields(config, text_encoder_fields(), kComponent, c);
  // CLIPTextModel configs carry a projection_dim too (the CLIP model's), which they do not use.
  const auto architectures = value_or(config, "architectures", std::vector<std::string>{}, kComponent);
  const bool with_projection = std::find(architectures.begin(), architectures.end(),
                                         "CLIPTextModelWithProjection") != architectures.end();
  if (with_projection) {
    c.projection_dim = value_or(config, "projection_dim", 0, kComponent);
    if (c.projection_dim <= 0) {
      throw Error("text encoder config: CLIPTextModelWithProjection without a positive projection_dim");
    }
  }
  if (c.hidden_act != "quick_gelu" && c.hidden_act != "gelu") {
    throw Error("text encoder config: unsupported hidden_act '" + c.hidden_act + "'");
  }
  if (c.num_heads <= 0 || c.hidden_size % c.num_heads != 0) {
    throw Error("text encoder config: hidden_size " + std::to_string(c.hidden_size) +
                " is not divisible by num_attention_heads " + std::to_string(c.num_heads));
  }
  return c;
}

TextEncoderConfig TextEncoderConfig::infer(const TensorMap& weights, const TextEncoderHints& hints) {
  TextEncoderConfig c;
  const auto& tokens = require(weights, "text_model.embeddings.token_embedding.weight", "text encoder");
  c.vocab_size = static_cast<int>(tokens.size(0));
  c.hidden_size = static_cast<int>(tokens.size(1));
  c.max_positions = static_cast<int>(
      require(weights, "text_model.embeddings.position_embedding.weight", "text encoder").size(0));
  c.num_layers = count_indexed(weights, "text_model.encoder.layers.");
  c.intermediate_size = static_cast<int>(
      require(weights, "text_model.encoder.layers.0.mlp.fc1.weight", "text encoder").size(0));
  auto projection = weights.find("text_projection.weight");
  if (projection != weights.end()) {
    if (projection->second.dim() != 2 || projection->second.size(1) != c.hidden_size) {
      throw Error("text encoder: tensor 'text_projection.weight' has shape " + c10::str(projection->second.sizes()) +
                  ", expected [projection_dim," + std::to_string(c.hidden_size) + "]");
    }
    c.projection_dim = static_cast<int>(projection->second.size(0));
  }
  // CLIP ViT-L, OpenCLIP ViT-H and bigG all use 64-wide heads; small models must say so in a config.
  // OpenCLIP (SD 2.x, SDXL's second encoder) uses exact GELU, CLIP quick_gelu.
  const bool open_clip = hints.open_clip || c.projection_dim > 0;
  c.num_heads = hints.num_heads.value_or(c.hidden_size / 64);
  c.hidden_act = hints.hidden_act.value_or(open_clip ? "gelu" : "quick_gelu");
  if (c.hidden_act != "quick_gelu" && c.hidden_act != "gelu") {
    throw Error("text encoder: unsupported activation '" + c.hidden_act + "'");
  }
  // Both original encoders pool at the highest id (ids.argmax(-1)): transformers' legacy eos id 2,
  // unless the hints (a config `diffuse convert` wrote beside the file) say the vocabulary's own ids.
  c.eos_token_id = hints.eos_token_id.value_or(2);
  c.bos_token_id = hints.bos_token_id.value_or(c.bos_token_id);
  c.pad_token_id = hints.pad_token_id.value_or(c.pad_token_id);
  if (c.num_heads <= 0 || c.hidden_size % c.num_heads != 0) {
    throw Error("text encoder: cannot tell the attention heads of a hidden size " +
                std::to_string(c.hidden_size) + " encoder; give an original config beside the file");
  }
  return c;
}

UNetConfig UNetConfig::from_json(const json& config) {
  constexpr const char* kComponent = "unet config";
  UNetConfig c;
  read_fields(config, unet_fields(), kComponent, c);
  if (c.block_out_channels.empty()) throw Error("unet config: block_out_channels is empty");
  const size_t levels = c.block_out_channels.size();
  const auto down_types =
      value_or(config, "down_block_types", std::vector<std::string>(levels, "CrossAttnDownBlock2D"), kComponent);
  if (down_types.size() != levels) throw Error("unet config: down_block_types and block_out_channels differ in length");
  c.cross_attention.clear();
  for (const auto& type : down_types) {
    if (type != "CrossAttnDownBlock2D" && type != "DownBlock2D") {
      throw Error("unet config: unsupported down block type '" + type + "'");
    }
    c.cross_attention.push_back(type == "CrossAttnDownBlock2D");
  }
  const auto up_types = value_or(config, "up_block_types", std::vector<std::string>{}, kComponent);
  for (size_t i = 0; i < up_types.size() && i < levels; ++i) {
    if (up_types[i] != (c.cross_attention[levels - 1 - i] ? "CrossAttnUpBlock2D" : "UpBlock2D")) {
      throw Error("unet config: up_block_types do not mirror down_block_types");
    }
  }
  // diffusers' legacy naming: "attention_head_dim" holds the number of heads when
  // "num_attention_heads" is absent.
  const char* heads_key =
      config.contains("num_attention_heads") && !config.at("num_attention_heads").is_null() ? "num_attention_heads"
                                                                                             : "attention_head_dim";
  c.num_heads = per_level(config, heads_key, levels, std::vector<int>(levels, 8), kComponent);
  c.transformer_layers =
      per_level(config, "transformer_layers_per_block", levels, std::vector<int>(levels, 1), kComponent);
  c.addition_embed_type = value_or(config, "addition_embed_type", std::string(), kComponent);
  if (!c.addition_embed_type.empty() && !c.text_time()) {
    throw Error("unet config: addition_embed_type '" + c.addition_embed_type + "' is not supported yet");
  }
  if (c.text_time()) {
    c.addition_time_embed_dim = value_or(config, "addition_time_embed_dim", 0, kComponent);
    c.projection_class_embeddings_input_dim =
        value_or(config, "projection_class_embeddings_input_dim", 0, kComponent);
    if (c.addition_time_embed_dim <= 0 || c.addition_time_embed_dim % 2 != 0 ||
        c.projection_class_embeddings_input_dim <= 0) {
      throw Error("unet config: addition_embed_type 'text_time' needs an even positive addition_time_embed_dim and "
                  "a positive projection_class_embeddings_input_dim");
    }
  }
  c.time_cond_proj_dim = value_or(config, "time_cond_proj_dim", 0, kComponent);
  if (c.time_cond_proj_dim < 0 || c.time_cond_proj_dim % 2 != 0) {
    throw Error("unet config: time_cond_proj_dim " + std::to_string(c.time_cond_proj_dim) +
                " must be an even number (sin and cos halves of the guidance embedding)");
  }
  for (const char* key : {"class_embed_type", "encoder_hid_dim",
                          "reverse_transformer_layers_per_block"}) {
    if (config.contains(key) && !config.at(key).is_null()) {
      throw Error(std::string("unet config: '") + key + "' is not supported yet");
    }
  }
  return c;
}

namespace {

// What the tensors of a UNet's encoder half say (conv_in, time embeddings, down and middle blocks),
// which a UNet and a ControlNet share. `component` starts error messages.
void infer_encoder(const TensorMap& weights, UNetConfig& c, const char* component) {
  const auto& conv_in = require(weights, "conv_in.weight", component);
  c.in_channels = static_cast<int>(conv_in.size(1));
  if (const auto cond_proj = weights.find("time_embedding.cond_proj.weight"); cond_proj != weights.end()) {
    c.time_cond_proj_dim = static_cast<int>(cond_proj->second.size(1));
  }
  const int levels = count_indexed(weights, "down_blocks.");
  c.layers_per_block = count_indexed(weights, "down_blocks.0.resnets.");
  c.block_out_channels.clear();
  c.cross_attention.clear();
  c.transformer_layers.clear();
  for (int level = 0; level < levels; ++level) {
    const std::string block = "down_blocks." + std::to_string(level);
    c.block_out_channels.push_back(
        static_cast<int>(require(weights, block + ".resnets.0.conv1.weight", component).size(0)));
    const bool attention = has_prefix(weights, block + ".attentions.");
    c.cross_attention.push_back(attention);
    c.transformer_layers.push_back(
        attention ? count_indexed(weights, block + ".attentions.0.transformer_blocks.") : 1);
    if (attention) {
      const auto& to_k = require(weights, block + ".attentions.0.transformer_blocks.0.attn2.to_k.weight", component);
      c.cross_attention_dim = static_cast<int>(to_k.size(1));
      c.use_linear_projection = require(weights, block + ".attentions.0.proj_in.weight", component).dim() == 2;
    }
  }
  // The middle block runs the deepest level's transformer depth; where that level has no attention
  // (SD 1.x), the middle block's own count says it.
  if (levels > 0 && !c.cross_attention.back() && has_prefix(weights, "mid_block.attentions.0.transformer_blocks.")) {
    c.transformer_layers.back() = count_indexed(weights, "mid_block.attentions.0.transformer_blocks.");
  }
  // SDXL: add_embedding (sgm's label_emb) takes the pooled text embedding and the size embeddings.
  auto add_embedding = weights.find("add_embedding.linear_1.weight");
  if (add_embedding != weights.end()) {
    c.addition_embed_type = "text_time";
    c.projection_class_embeddings_input_dim = static_cast<int>(add_embedding->second.size(1));
    c.addition_time_embed_dim = 256;  // SDXL's size embedders' width (sgm ConcatTimestepEmbedderND outdim)
  }
}

}  // namespace

UNetConfig UNetConfig::infer(const TensorMap& weights, const UNetHints& hints) {
  UNetConfig c;
  infer_encoder(weights, c, "unet");
  c.out_channels = static_cast<int>(require(weights, "conv_out.weight", "unet").size(0));
  // LDM's UNet always normalises in 32 groups; a model of narrower channels says its own.
  c.norm_num_groups = hints.norm_num_groups.value_or(32);
  if (c.text_time()) {
    const int adm_in_channels = hints.added_conditioning_inputs.value_or(c.projection_class_embeddings_input_dim);
    if (adm_in_channels != c.projection_class_embeddings_input_dim) {
      throw Error("unet: tensor 'add_embedding.linear_1.weight' takes " +
                  std::to_string(c.projection_class_embeddings_input_dim) + " inputs, the original config's "
                  "adm_in_channels says " + std::to_string(adm_in_channels));
    }
    // The size embeddings' width; SDXL's is 256.
    c.addition_time_embed_dim = hints.addition_time_embed_dim.value_or(256);
  }
  // SDXL trained at 1024x1024 (128 latents), SD 1.x at 512x512.
  c.sample_size = hints.sample_size.value_or(c.text_time() ? 128 : 64);
  // Heads are invisible in the shapes: SD 1.x uses 8 heads, SD 2.x 64-wide heads.
  const int fixed_heads = hints.num_heads.value_or(-1);
  const int head_channels = hints.head_channels.value_or(c.use_linear_projection ? 64 : -1);
  c.num_heads.clear();
  for (int channels : c.block_out_channels) {
    if (fixed_heads > 0 && head_channels <= 0) {
      c.num_heads.push_back(fixed_heads);
    } else if (head_channels > 0) {
      c.num_heads.push_back(channels / head_channels);
    } else {
      c.num_heads.push_back(8);
    }
  }
  return c;
}

ControlNetConfig ControlNetConfig::from_json(const json& config) {
  constexpr const char* kComponent = "controlnet config";
  if (config.is_object() && config.contains("_class_name") && config.at("_class_name") != "ControlNetModel") {
    throw Error(std::string(kComponent) + ": _class_name is " + config.at("_class_name").dump() +
                ", not ControlNetModel");
  }
  ControlNetConfig c;
  c.unet = UNetConfig::from_json(config);
  c.conditioning_channels = value_or(config, "conditioning_channels", c.conditioning_channels, kComponent);
  c.conditioning_embedding_out_channels = value_or(config, "conditioning_embedding_out_channels",
                                                   c.conditioning_embedding_out_channels, kComponent);
  c.global_pool_conditions = value_or(config, "global_pool_conditions", c.global_pool_conditions, kComponent);
  c.conditioning_channel_order =
      value_or(config, "controlnet_conditioning_channel_order", c.conditioning_channel_order, kComponent);
  const auto mid = value_or(config, "mid_block_type", std::string("UNetMidBlock2DCrossAttn"), kComponent);
  if (mid != "UNetMidBlock2DCrossAttn") throw Error(std::string(kComponent) + ": mid_block_type '" + mid + "' is not supported");
  if (c.conditioning_channel_order != "rgb" && c.conditioning_channel_order != "bgr") {
    throw Error(std::string(kComponent) + ": controlnet_conditioning_channel_order '" + c.conditioning_channel_order +
                "' is not rgb or bgr");
  }
  if (c.conditioning_embedding_out_channels.empty() || c.conditioning_embedding_out_channels.size() > 8 ||
      c.conditioning_channels <= 0) {
    throw Error(std::string(kComponent) + ": conditioning_embedding_out_channels needs 1 to 8 entries and "
                "conditioning_channels must be positive");
  }
  return c;
}

ControlNetConfig ControlNetConfig::infer(const TensorMap& weights, const UNetConfig* base) {
  constexpr const char* kComponent = "controlnet";
  ControlNetConfig c;
  infer_encoder(weights, c.unet, kComponent);
  c.unet.out_channels = c.unet.in_channels;
  // The hint encoder: conv_in, blocks.0..n-1 in (stride 1, stride 2) pairs, conv_out.
  const auto& hint_in = require(weights, "controlnet_cond_embedding.conv_in.weight", kComponent);
  c.conditioning_channels = static_cast<int>(hint_in.size(1));
  c.conditioning_embedding_out_channels = {static_cast<int>(hint_in.size(0))};
  const int blocks = count_indexed(weights, "controlnet_cond_embedding.blocks.");
  if (blocks % 2 != 0) {
    throw Error(std::string(kComponent) + ": the hint encoder has " + std::to_string(blocks) +
                " convolutions between its first and last, expected (stride 1, stride 2) pairs");
  }
  for (int i = 1; i < blocks; i += 2) {
    const auto name = "controlnet_cond_embedding.blocks." + std::to_string(i) + ".weight";
    c.conditioning_embedding_out_channels.push_back(static_cast<int>(require(weights, name, kComponent).size(0)));
  }
  // Shuffle nets pool their residuals; nothing in the shapes says so (a diffusers config does).
  c.global_pool_conditions = false;
  // Heads, norm groups and the size embedding's width are invisible in the shapes: the copied
  // encoder has its base UNet's.
  const UNetConfig defaults;
  const UNetConfig& source = base ? *base : defaults;
  c.unet.norm_num_groups = source.norm_num_groups;
  c.unet.norm_eps = source.norm_eps;
  c.unet.flip_sin_to_cos = source.flip_sin_to_cos;
  c.unet.freq_shift = source.freq_shift;
  c.unet.sample_size = source.sample_size;
  if (c.unet.text_time() && base && base->text_time()) c.unet.addition_time_embed_dim = base->addition_time_embed_dim;
  c.unet.num_heads.clear();
  for (size_t level = 0; level < c.unet.block_out_channels.size(); ++level) {
    if (base && level < base->num_heads.size()) {
      c.unet.num_heads.push_back(base->num_heads[level]);
    } else {
      c.unet.num_heads.push_back(c.unet.use_linear_projection ? std::max(1, c.unet.block_out_channels[level] / 64) : 8);
    }
  }
  return c;
}

json ControlNetConfig::to_json() const {
  json config = unet.to_json();
  config.erase("up_block_types");
  config.erase("out_channels");
  config["_class_name"] = "ControlNetModel";
  config["conditioning_channels"] = conditioning_channels;
  config["conditioning_embedding_out_channels"] = conditioning_embedding_out_channels;
  config["global_pool_conditions"] = global_pool_conditions;
  config["controlnet_conditioning_channel_order"] = conditioning_channel_order;
  return config;
}

VaeConfig VaeConfig::from_json(const json& config) {
  VaeConfig c;
  read_fields(config, vae_fields(), "vae config", c);
  // downscale_factor() is 2^(levels - 1): an int.
  if (c.block_out_channels.empty() || c.block_out_channels.size() > 30) {
    throw Error("vae config: block_out_channels has " + std::to_string(c.block_out_channels.size()) +
                " entries (1 to 30 levels)");
  }
  return c;
}

VaeConfig VaeConfig::infer(const TensorMap& weights, const VaeHints& hints) {
  VaeConfig c;
  const auto& conv_in = require(weights, "encoder.conv_in.weight", "vae");
  c.in_channels = static_cast<int>(conv_in.size(1));
  c.out_channels = static_cast<int>(require(weights, "decoder.conv_out.weight", "vae").size(0));
  c.latent_channels = static_cast<int>(require(weights, "decoder.conv_in.weight", "vae").size(1));
  const int levels = count_indexed(weights, "encoder.down_blocks.");
  c.layers_per_block = count_indexed(weights, "encoder.down_blocks.0.resnets.");
  c.block_out_channels.clear();
  for (int level = 0; level < levels; ++level) {
    c.block_out_channels.push_back(static_cast<int>(
        require(weights, "encoder.down_blocks." + std::to_string(level) + ".resnets.0.conv1.weight", "vae").size(0)));
  }
  c.scaling_factor = hints.scaling_factor.value_or(c.scaling_factor);
  c.sample_size = hints.sample_size.value_or(c.sample_size);
  c.norm_num_groups = hints.norm_num_groups.value_or(32);
  return c;
}

json TextEncoderConfig::to_json() const {
  json config = {
      {"architectures", json::array({projection_dim > 0 ? "CLIPTextModelWithProjection" : "CLIPTextModel"})},
      {"model_type", "clip_text_model"},
  };
  write_fields(*this, text_encoder_fields(), config);
  if (projection_dim > 0) config["projection_dim"] = projection_dim;
  return config;
}

json UNetConfig::to_json() const {
  std::vector<std::string> down, up;
  for (int level = 0; level < levels(); ++level) {
    down.push_back(cross_attention[level] ? "CrossAttnDownBlock2D" : "DownBlock2D");
    up.push_back(cross_attention[levels() - 1 - level] ? "CrossAttnUpBlock2D" : "UpBlock2D");
  }
  json config = {
      {"_class_name", "UNet2DConditionModel"},
      {"down_block_types", down},
      {"up_block_types", up},
      {"mid_block_type", "UNetMidBlock2DCrossAttn"},
      // diffusers' legacy name: attention_head_dim holds the heads per level while
      // num_attention_heads is null, as its own SD configs say.
      {"attention_head_dim", num_heads},
      {"num_attention_heads", nullptr},
      {"transformer_layers_per_block", transformer_layers},
      {"act_fn", "silu"},
      {"addition_embed_type", nullptr},
  };
  write_fields(*this, unet_fields(), config);
  if (text_time()) {
    config["addition_embed_type"] = addition_embed_type;
    config["addition_time_embed_dim"] = addition_time_embed_dim;
    config["projection_class_embeddings_input_dim"] = projection_class_embeddings_input_dim;
  }
  if (time_cond_proj_dim > 0) config["time_cond_proj_dim"] = time_cond_proj_dim;
  return config;
}

json VaeConfig::to_json() const {
  json config = {
      {"_class_name", "AutoencoderKL"},
      {"down_block_types", std::vector<std::string>(block_out_channels.size(), "DownEncoderBlock2D")},
      {"up_block_types", std::vector<std::string>(block_out_channels.size(), "UpDecoderBlock2D")},
      {"act_fn", "silu"},
  };
  write_fields(*this, vae_fields(), config);
  return config;
}

json TinyAutoencoderConfig::to_json() const {
  json config = {
      {"_class_name", "AutoencoderTiny"},
      {"encoder_block_out_channels", encoder_block_out_channels},
      {"decoder_block_out_channels", decoder_block_out_channels},
      {"act_fn", "relu"},
  };
  write_fields(*this, tiny_autoencoder_fields(), config);
  return config;
}

int TinyAutoencoderConfig::downscale_factor() const {
  int factor = 1;
  for (size_t i = 1; i < num_decoder_blocks.size(); ++i) factor *= upsampling_scaling_factor;
  return factor;
}

TinyAutoencoderConfig TinyAutoencoderConfig::from_json(const json& config) {
  if (config.is_object() && config.contains("_class_name") && config.at("_class_name") != "AutoencoderTiny") {
    throw Error("taesd config: _class_name is " + config.at("_class_name").dump() + ", not AutoencoderTiny");
  }
  constexpr const char* kComponent = "taesd config";
  TinyAutoencoderConfig c;
  read_fields(config, tiny_autoencoder_fields(), kComponent, c);
  c.encoder_block_out_channels = per_level(config, "encoder_block_out_channels", c.num_encoder_blocks.size(),
                                           c.encoder_block_out_channels, kComponent);
  c.decoder_block_out_channels = per_level(config, "decoder_block_out_channels", c.num_decoder_blocks.size(),
                                           c.decoder_block_out_channels, kComponent);
  const auto act = value_or(config, "act_fn", std::string("relu"), kComponent);
  if (act != "relu") throw Error("taesd config: act_fn '" + act + "' is not supported (TAESD uses relu)");
  if (c.num_decoder_blocks.empty() || c.encoder_block_out_channels.size() != c.num_encoder_blocks.size() ||
      c.decoder_block_out_channels.size() != c.num_decoder_blocks.size()) {
    throw Error("taesd config: num_encoder_blocks / num_decoder_blocks and their block_out_channels must be "
                "non-empty lists of the same length");
  }
  for (const int n : {c.in_channels, c.out_channels, c.latent_channels, c.upsampling_scaling_factor}) {
    if (n <= 0) throw Error("taesd config: channel counts and upsampling_scaling_factor must be positive");
  }
  for (const auto* list : {&c.encoder_block_out_channels, &c.decoder_block_out_channels}) {
    for (const int n : *list) {
      if (n <= 0) throw Error("taesd config: block_out_channels must be positive");
    }
  }
  for (const auto* list : {&c.num_encoder_blocks, &c.num_decoder_blocks}) {
    for (const int n : *list) {
      if (n < 0) throw Error("taesd config: block counts must be 0 or more");
    }
  }
  return c;
}

namespace {

// The layers of one TAESD half in index order, as seen from their tensors: a block (conv.0..4), a
// convolution with or without a bias, or (no tensors) an activation or an upsampling.
struct TinyLayer {
  enum Kind { Parameterless, Block, Conv, ConvNoBias } kind = Parameterless;
  const at::Tensor* weight = nullptr;  // the conv's, or the block's first conv's
};

// Parameterless layers hold no tensors, so the layer count is the largest index seen, plus one.
std::vector<TinyLayer> tiny_layers(const TensorMap& weights, const std::string& prefix, const std::string& source) {
  constexpr int kMaxLayers = 256;  // taesd.py has 15 and 20; a wild index must not size the list
  int count = 0;
  for (const auto& [name, tensor] : weights) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const auto rest = name.substr(prefix.size());
    const auto dot = rest.find('.');
    if (dot == 0 || dot == std::string::npos || dot > 3 ||
        rest.find_first_not_of("0123456789") != dot) {
      throw Error(source + ": tensor '" + name + "' is not a TAESD layer (" + prefix + "<index>.*)");
    }
    count = std::max(count, std::stoi(rest.substr(0, dot)) + 1);
  }
  if (count > kMaxLayers) throw Error(source + ": " + prefix + " has more than " + std::to_string(kMaxLayers) + " layers");
  std::vector<TinyLayer> layers(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    const std::string layer = prefix + std::to_string(i) + ".";
    auto& entry = layers[static_cast<size_t>(i)];
    if (const auto block = weights.find(layer + "conv.0.weight"); block != weights.end()) {
      entry = {TinyLayer::Block, &block->second};
    } else if (const auto conv = weights.find(layer + "weight"); conv != weights.end()) {
      entry = {weights.count(layer + "bias") ? TinyLayer::Conv : TinyLayer::ConvNoBias, &conv->second};
    }
  }
  return layers;
}

}  // namespace

TinyAutoencoderConfig TinyAutoencoderConfig::infer(const TensorMap& weights, const std::string& source) {
  TinyAutoencoderConfig c;
  const auto not_taesd = [&](const std::string& part, const std::string& why) {
    return Error(source + ": not a TAESD " + part + " (" + why + ")");
  };
  const auto conv_weight = [&](const TinyLayer& layer, const std::string& part) -> const at::Tensor& {
    if (layer.weight->dim() != 4) throw not_taesd(part, "a convolution weight is not 4-dimensional");
    return *layer.weight;
  };
  // Encoder: conv(in -> C), blocks, then per level a stride-2 conv without bias and blocks, and a
  // conv(C -> latent) to end.
  c.num_encoder_blocks.clear();
  c.encoder_block_out_channels.clear();
  const auto encoder = tiny_layers(weights, "encoder.layers.", source);
  if (!encoder.empty()) {
    if (encoder.front().kind != TinyLayer::Conv) throw not_taesd("encoder", "layer 0 is not a convolution with a bias");
    if (encoder.back().kind != TinyLayer::Conv || encoder.size() < 2) {
      throw not_taesd("encoder", "its last layer is not a convolution with a bias");
    }
    c.in_channels = static_cast<int>(conv_weight(encoder.front(), "encoder").size(1));
    c.latent_channels = static_cast<int>(conv_weight(encoder.back(), "encoder").size(0));
    for (size_t i = 0; i + 1 < encoder.size(); ++i) {
      const auto& layer = encoder[i];
      if (layer.kind == TinyLayer::Conv && i == 0) {
        c.num_encoder_blocks.push_back(0);
        c.encoder_block_out_channels.push_back(static_cast<int>(conv_weight(layer, "encoder").size(0)));
      } else if (layer.kind == TinyLayer::ConvNoBias) {
        c.num_encoder_blocks.push_back(0);
        c.encoder_block_out_channels.push_back(static_cast<int>(conv_weight(layer, "encoder").size(0)));
      } else if (layer.kind == TinyLayer::Block) {
        ++c.num_encoder_blocks.back();
      } else {
        throw not_taesd("encoder", "layer " + std::to_string(i) + " is neither a block nor a convolution");
      }
    }
  }
  // Decoder: conv(latent -> C), ReLU, then per level blocks, an upsampling and a conv without bias;
  // the last level's blocks end with a conv(C -> out) with a bias.
  c.num_decoder_blocks.clear();
  c.decoder_block_out_channels.clear();
  const auto decoder = tiny_layers(weights, "decoder.layers.", source);
  if (!decoder.empty()) {
    if (decoder.front().kind != TinyLayer::Conv) throw not_taesd("decoder", "layer 0 is not a convolution with a bias");
    if (decoder.back().kind != TinyLayer::Conv || decoder.size() < 2) {
      throw not_taesd("decoder", "its last layer is not a convolution with a bias");
    }
    const int latent = static_cast<int>(conv_weight(decoder.front(), "decoder").size(1));
    if (!encoder.empty() && latent != c.latent_channels) {
      throw not_taesd("pair", "the encoder makes " + std::to_string(c.latent_channels) +
                                  "-channel latents, the decoder reads " + std::to_string(latent));
    }
    c.latent_channels = latent;
    c.out_channels = static_cast<int>(conv_weight(decoder.back(), "decoder").size(0));
    int blocks = 0;
    int channels = static_cast<int>(conv_weight(decoder.front(), "decoder").size(0));
    for (size_t i = 1; i < decoder.size(); ++i) {
      const auto& layer = decoder[i];
      if (layer.kind == TinyLayer::Block) {
        ++blocks;
        channels = static_cast<int>(conv_weight(layer, "decoder").size(0));
      } else if (layer.kind == TinyLayer::ConvNoBias || layer.kind == TinyLayer::Conv) {
        const bool last = i + 1 == decoder.size();
        if (last != (layer.kind == TinyLayer::Conv)) {
          throw not_taesd("decoder", "layer " + std::to_string(i) + " is a convolution " +
                                         (last ? "without" : "with") + " a bias");
        }
        c.num_decoder_blocks.push_back(blocks);
        c.decoder_block_out_channels.push_back(channels);
        blocks = 0;
      }
    }
  }
  if (c.num_decoder_blocks.empty() && c.num_encoder_blocks.empty()) {
    throw Error(source + ": no TAESD layers (expected encoder.layers.<i>.* or decoder.layers.<i>.*, or the "
                         "original taesd_encoder / taesd_decoder names <i>.*)");
  }
  return c;
}

}  // namespace diffuse::models
