#include "io/original_config.h"

#include <initializer_list>

#include "util/error.h"
#include "util/json_field.h"

namespace diffuse::io {

namespace {

using nlohmann::json;

// The node at `path` under `root`, or null where any step is missing.
const json* node_at(const json& root, std::initializer_list<const char*> path) {
  const json* node = &root;
  for (const char* step : path) {
    if (!node->is_object() || !node->contains(step)) return nullptr;
    node = &node->at(step);
  }
  return node;
}

// One field through util's typed reader; its error names the original config.
template <typename T>
std::optional<T> field(const json* node, const char* key) {
  if (!node) return std::nullopt;
  try {
    return json_field<T>(*node, key);
  } catch (const InvalidParameter& e) {
    throw Error(std::string("original config: ") + e.what());
  }
}

std::string target_of(const json& stage) {
  return field<std::string>(&stage, "target").value_or("");
}

// What an LDM cond_stage_config or an sgm embedder says of its text encoder: its kind from the
// target class, and the "facts" `diffuse convert` writes for what neither says.
OriginalConfig::TextEncoder text_encoder_of(const json& stage) {
  OriginalConfig::TextEncoder encoder;
  encoder.open_clip = target_of(stage).find("OpenCLIP") != std::string::npos;
  const json* facts = node_at(stage, {"facts"});
  encoder.num_heads = field<int>(facts, "num_attention_heads");
  if (!encoder.num_heads) encoder.num_heads = field<int>(facts, "heads");
  encoder.activation = field<std::string>(facts, "hidden_act");
  if (!encoder.activation) encoder.activation = field<std::string>(facts, "act");
  encoder.bos_token_id = field<int>(facts, "bos_token_id");
  encoder.eos_token_id = field<int>(facts, "eos_token_id");
  encoder.pad_token_id = field<int>(facts, "pad_token_id");
  return encoder;
}

// sgm's conditioner: its text embedders by kind, and the size embedders' width.
void read_sgm_embedders(const json& params, OriginalConfig& config) {
  const json* embedders = node_at(params, {"conditioner_config", "params", "emb_models"});
  if (!embedders || !embedders->is_array()) return;
  bool seen_size_embedder = false;
  for (const auto& embedder : *embedders) {
    const auto target = target_of(embedder);
    if (target.find("CLIPEmbedder") != std::string::npos) {
      auto encoder = text_encoder_of(embedder);
      (encoder.open_clip ? config.text_encoder_2 : config.text_encoder) = std::move(encoder);
    } else if (!seen_size_embedder && target.find("ConcatTimestepEmbedderND") != std::string::npos) {
      seen_size_embedder = true;
      config.size_embedding_width = field<int>(node_at(embedder, {"params"}), "outdim");
    }
  }
}

void read_unet(const json& params, OriginalConfig& config) {
  const json* ldm = node_at(params, {"unet_config"});
  const json* unet = node_at(params, {"unet_config", "params"});
  if (!unet) unet = node_at(params, {"network_config", "params"});
  config.unet.num_heads = field<int>(unet, "num_heads");
  config.unet.num_head_channels = field<int>(unet, "num_head_channels");
  config.unet.image_size = field<int>(unet, "image_size");
  config.unet.adm_in_channels = field<int>(unet, "adm_in_channels");
  config.unet.norm_num_groups = field<int>(ldm ? node_at(*ldm, {"facts"}) : nullptr, "norm_num_groups");
}

void read_vae(const json& params, OriginalConfig& config) {
  config.vae.scale_factor = field<double>(&params, "scale_factor");
  config.vae.resolution = field<int>(node_at(params, {"first_stage_config", "params", "ddconfig"}), "resolution");
  config.vae.norm_num_groups = field<int>(node_at(params, {"first_stage_config", "facts"}), "norm_num_groups");
}

// LDM names the schedule at the top of model.params; sgm in its denoiser (LegacyDDPMDiscretization,
// whose defaults are SD's 0.00085, 0.012, 1000) and v prediction by a v-scaling denoiser.
void read_schedule(const json& params, OriginalConfig& config) {
  const json* denoiser = node_at(params, {"denoiser_config", "params"});
  const json* discretization = denoiser ? node_at(*denoiser, {"discretization_config", "params"}) : nullptr;
  config.train_timesteps = field<int>(&params, "timesteps");
  if (!config.train_timesteps) config.train_timesteps = field<int>(denoiser, "num_idx");
  config.beta_start = field<double>(&params, "linear_start");
  if (!config.beta_start) config.beta_start = field<double>(discretization, "linear_start");
  config.beta_end = field<double>(&params, "linear_end");
  if (!config.beta_end) config.beta_end = field<double>(discretization, "linear_end");
  const auto scaling = field<std::string>(denoiser ? node_at(*denoiser, {"scaling_config"}) : nullptr, "target");
  config.v_prediction = field<std::string>(&params, "parameterization").value_or("eps") == "v" ||
                        scaling.value_or("").find("VScaling") != std::string::npos;
}

}  // namespace

OriginalConfig read_original_config(const json& original) {
  OriginalConfig config;
  if (!original.is_object()) return config;
  const json* model = node_at(original, {"model"});
  const json& root = model ? *model : original;
  const json* params_node = node_at(root, {"params"});
  const json& params = params_node ? *params_node : root;
  if (!params.is_object()) return config;
  read_unet(params, config);
  read_vae(params, config);
  if (const json* stage = node_at(params, {"cond_stage_config"})) {
    config.text_encoder = text_encoder_of(*stage);
    config.open_clip_layer = field<std::string>(node_at(*stage, {"params"}), "layer").value_or("penultimate");
  }
  read_sgm_embedders(params, config);
  read_schedule(params, config);
  return config;
}

void add_family_defaults(OriginalConfig& config, LdmFamily family) {
  if (family == LdmFamily::Sd2) config.text_encoder.open_clip = true;
  if (family == LdmFamily::Sdxl) {
    config.text_encoder_2.open_clip = true;
    if (!config.vae.scale_factor) config.vae.scale_factor = 0.13025;
  }
}

json original_config_json(const OriginalConfig& config, LdmFamily family) {
  json unet_params = json::object();
  const auto put = [](json& node, const char* key, const auto& value) {
    if (value) node[key] = *value;
  };
  put(unet_params, "image_size", config.unet.image_size);
  put(unet_params, "num_heads", config.unet.num_heads);
  unet_params["num_head_channels"] = config.unet.num_head_channels.value_or(-1);
  json unet = {{"params", unet_params}, {"facts", json::object()}};
  put(unet["facts"], "norm_num_groups", config.unet.norm_num_groups);

  json first_stage = {{"params", {{"ddconfig", json::object()}}}, {"facts", json::object()}};
  put(first_stage["params"]["ddconfig"], "resolution", config.vae.resolution);
  put(first_stage["facts"], "norm_num_groups", config.vae.norm_num_groups);

  const auto& text = config.text_encoder;
  json cond_stage = {{"target", family == LdmFamily::Sd2 || text.open_clip
                                    ? "ldm.modules.encoders.modules.FrozenOpenCLIPEmbedder"
                                    : "ldm.modules.encoders.modules.FrozenCLIPEmbedder"},
                     {"facts", json::object()}};
  put(cond_stage["facts"], "num_attention_heads", text.num_heads);
  put(cond_stage["facts"], "hidden_act", text.activation);
  put(cond_stage["facts"], "bos_token_id", text.bos_token_id);
  put(cond_stage["facts"], "eos_token_id", text.eos_token_id);
  put(cond_stage["facts"], "pad_token_id", text.pad_token_id);

  json params = {{"unet_config", unet}, {"first_stage_config", first_stage}, {"cond_stage_config", cond_stage}};
  put(params, "scale_factor", config.vae.scale_factor);
  put(params, "timesteps", config.train_timesteps);
  put(params, "linear_start", config.beta_start);
  put(params, "linear_end", config.beta_end);
  if (config.v_prediction) params["parameterization"] = "v";
  return json{{"model", {{"target", "ldm.models.diffusion.ddpm.LatentDiffusion"}, {"params", params}}}};
}

}  // namespace diffuse::io
