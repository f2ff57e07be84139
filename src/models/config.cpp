#include "models/config.h"

#include <set>

#include "util/error.h"

namespace diffuse::models {

namespace {

using nlohmann::json;

template <typename T>
T value_or(const json& config, const char* key, T fallback) {
  if (!config.is_object() || !config.contains(key) || config.at(key).is_null()) return fallback;
  return config.at(key).get<T>();
}

// diffusers lets several fields be one number for every level or a list per level.
std::vector<int> per_level(const json& config, const char* key, size_t levels, std::vector<int> fallback) {
  if (!config.is_object() || !config.contains(key) || config.at(key).is_null()) return fallback;
  const auto& value = config.at(key);
  if (value.is_number()) return std::vector<int>(levels, value.get<int>());
  auto list = value.get<std::vector<int>>();
  if (list.size() != levels) {
    throw Error("config: '" + std::string(key) + "' has " + std::to_string(list.size()) +
                " entries for " + std::to_string(levels) + " levels");
  }
  return list;
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

const json& original_params(const json& original, const char* stage) {
  static const json empty = json::object();
  if (!original.is_object()) return empty;
  const auto& model = original.contains("model") ? original.at("model") : original;
  const auto& params = model.contains("params") ? model.at("params") : model;
  if (!params.contains(stage)) return empty;
  return params.at(stage);
}

}  // namespace

TextEncoderConfig TextEncoderConfig::from_json(const json& config) {
  TextEncoderConfig c;
  c.vocab_size = value_or(config, "vocab_size", c.vocab_size);
  c.hidden_size = value_or(config, "hidden_size", c.hidden_size);
  c.intermediate_size = value_or(config, "intermediate_size", c.intermediate_size);
  c.num_layers = value_or(config, "num_hidden_layers", c.num_layers);
  c.num_heads = value_or(config, "num_attention_heads", c.num_heads);
  c.max_positions = value_or(config, "max_position_embeddings", c.max_positions);
  c.hidden_act = value_or(config, "hidden_act", c.hidden_act);
  c.layer_norm_eps = value_or(config, "layer_norm_eps", c.layer_norm_eps);
  if (c.hidden_act != "quick_gelu" && c.hidden_act != "gelu") {
    throw Error("text encoder config: unsupported hidden_act '" + c.hidden_act + "'");
  }
  if (c.num_heads <= 0 || c.hidden_size % c.num_heads != 0) {
    throw Error("text encoder config: hidden_size " + std::to_string(c.hidden_size) +
                " is not divisible by num_attention_heads " + std::to_string(c.num_heads));
  }
  return c;
}

TextEncoderConfig TextEncoderConfig::infer(const TensorMap& weights, const json& original_config) {
  TextEncoderConfig c;
  const auto& tokens = require(weights, "text_model.embeddings.token_embedding.weight", "text encoder");
  c.vocab_size = static_cast<int>(tokens.size(0));
  c.hidden_size = static_cast<int>(tokens.size(1));
  c.max_positions = static_cast<int>(
      require(weights, "text_model.embeddings.position_embedding.weight", "text encoder").size(0));
  c.num_layers = count_indexed(weights, "text_model.encoder.layers.");
  c.intermediate_size = static_cast<int>(
      require(weights, "text_model.encoder.layers.0.mlp.fc1.weight", "text encoder").size(0));
  // CLIP ViT-L and OpenCLIP ViT-H both use 64-wide heads; small models must say so in a config.
  const auto& stage = original_params(original_config, "cond_stage_config");
  const json facts = stage.contains("facts") ? stage.at("facts") : json::object();
  c.num_heads = value_or(facts, "num_attention_heads", value_or(facts, "heads", c.hidden_size / 64));
  c.hidden_act = value_or(facts, "hidden_act", value_or(facts, "act", std::string("quick_gelu")));
  if (c.num_heads <= 0 || c.hidden_size % c.num_heads != 0) {
    throw Error("text encoder: cannot tell the attention heads of a hidden size " +
                std::to_string(c.hidden_size) + " encoder; give an original config beside the file");
  }
  return c;
}

UNetConfig UNetConfig::from_json(const json& config) {
  UNetConfig c;
  c.in_channels = value_or(config, "in_channels", c.in_channels);
  c.out_channels = value_or(config, "out_channels", c.out_channels);
  c.block_out_channels = value_or(config, "block_out_channels", c.block_out_channels);
  const size_t levels = c.block_out_channels.size();
  const auto down_types =
      value_or(config, "down_block_types", std::vector<std::string>(levels, "CrossAttnDownBlock2D"));
  if (down_types.size() != levels) throw Error("unet config: down_block_types and block_out_channels differ in length");
  c.cross_attention.clear();
  for (const auto& type : down_types) {
    if (type != "CrossAttnDownBlock2D" && type != "DownBlock2D") {
      throw Error("unet config: unsupported down block type '" + type + "'");
    }
    c.cross_attention.push_back(type == "CrossAttnDownBlock2D");
  }
  const auto up_types = value_or(config, "up_block_types", std::vector<std::string>{});
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
  c.num_heads = per_level(config, heads_key, levels, std::vector<int>(levels, 8));
  c.transformer_layers = per_level(config, "transformer_layers_per_block", levels, std::vector<int>(levels, 1));
  c.layers_per_block = value_or(config, "layers_per_block", c.layers_per_block);
  c.cross_attention_dim = value_or(config, "cross_attention_dim", c.cross_attention_dim);
  c.use_linear_projection = value_or(config, "use_linear_projection", c.use_linear_projection);
  c.norm_num_groups = value_or(config, "norm_num_groups", c.norm_num_groups);
  c.norm_eps = value_or(config, "norm_eps", c.norm_eps);
  c.flip_sin_to_cos = value_or(config, "flip_sin_to_cos", c.flip_sin_to_cos);
  c.freq_shift = value_or(config, "freq_shift", c.freq_shift);
  c.sample_size = value_or(config, "sample_size", c.sample_size);
  for (const char* key : {"addition_embed_type", "class_embed_type", "time_cond_proj_dim", "encoder_hid_dim"}) {
    if (config.contains(key) && !config.at(key).is_null()) {
      throw Error(std::string("unet config: '") + key + "' is not supported yet");
    }
  }
  return c;
}

UNetConfig UNetConfig::infer(const TensorMap& weights, const json& original_config) {
  UNetConfig c;
  const auto& conv_in = require(weights, "conv_in.weight", "unet");
  c.in_channels = static_cast<int>(conv_in.size(1));
  c.out_channels = static_cast<int>(require(weights, "conv_out.weight", "unet").size(0));
  const int levels = count_indexed(weights, "down_blocks.");
  c.layers_per_block = count_indexed(weights, "down_blocks.0.resnets.");
  c.block_out_channels.clear();
  c.cross_attention.clear();
  c.transformer_layers.clear();
  for (int level = 0; level < levels; ++level) {
    const std::string block = "down_blocks." + std::to_string(level);
    c.block_out_channels.push_back(
        static_cast<int>(require(weights, block + ".resnets.0.conv1.weight", "unet").size(0)));
    const bool attention = has_prefix(weights, block + ".attentions.");
    c.cross_attention.push_back(attention);
    c.transformer_layers.push_back(
        attention ? count_indexed(weights, block + ".attentions.0.transformer_blocks.") : 1);
    if (attention) {
      const auto& to_k = require(weights, block + ".attentions.0.transformer_blocks.0.attn2.to_k.weight", "unet");
      c.cross_attention_dim = static_cast<int>(to_k.size(1));
      c.use_linear_projection = require(weights, block + ".attentions.0.proj_in.weight", "unet").dim() == 2;
    }
  }
  c.norm_num_groups = 32;
  const auto& unet = original_params(original_config, "unet_config");
  const json params = unet.contains("params") ? unet.at("params") : json::object();
  c.sample_size = value_or(params, "image_size", 64);
  // Heads are invisible in the shapes: SD 1.x uses 8 heads, SD 2.x 64-wide heads.
  const int fixed_heads = value_or(params, "num_heads", -1);
  const int head_channels = value_or(params, "num_head_channels", c.use_linear_projection ? 64 : -1);
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

VaeConfig VaeConfig::from_json(const json& config) {
  VaeConfig c;
  c.in_channels = value_or(config, "in_channels", c.in_channels);
  c.out_channels = value_or(config, "out_channels", c.out_channels);
  c.latent_channels = value_or(config, "latent_channels", c.latent_channels);
  c.block_out_channels = value_or(config, "block_out_channels", c.block_out_channels);
  c.layers_per_block = value_or(config, "layers_per_block", c.layers_per_block);
  c.norm_num_groups = value_or(config, "norm_num_groups", c.norm_num_groups);
  c.scaling_factor = value_or(config, "scaling_factor", c.scaling_factor);
  c.sample_size = value_or(config, "sample_size", c.sample_size);
  return c;
}

VaeConfig VaeConfig::infer(const TensorMap& weights, const json& original_config) {
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
  const json model = original_config.is_object() && original_config.contains("model") ? original_config.at("model")
                                                                                        : json::object();
  const json params = model.contains("params") ? model.at("params") : json::object();
  c.scaling_factor = value_or(params, "scale_factor", c.scaling_factor);
  const json first = params.contains("first_stage_config") ? params.at("first_stage_config") : json::object();
  const json dd = first.contains("params") && first.at("params").contains("ddconfig") ? first.at("params").at("ddconfig")
                                                                                      : json::object();
  c.sample_size = value_or(dd, "resolution", c.sample_size);
  return c;
}

}  // namespace diffuse::models
