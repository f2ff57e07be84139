#include "pipeline/model.h"

#include "io/model_files.h"
#include "models/weights.h"
#include "util/error.h"
#include "util/json.h"

namespace diffuse::pipeline {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A single file has no scheduler config: as diffusers' from_single_file, take the betas and the
// parameterisation from the original config and the released SD configs' values for the rest
// (notably clip_sample false, which DDIM would otherwise default to true).
json single_file_scheduler_config(const json& original) {
  json params = json::object();
  if (original.is_object() && original.contains("model") && original.at("model").contains("params")) {
    params = original.at("model").at("params");
  }
  const auto get = [&](const char* key, json fallback) { return params.contains(key) ? params.at(key) : fallback; };
  return json{{"num_train_timesteps", get("timesteps", 1000)},
              {"beta_start", get("linear_start", 0.00085)},
              {"beta_end", get("linear_end", 0.012)},
              {"beta_schedule", "scaled_linear"},
              {"prediction_type", get("parameterization", "eps") == "v" ? "v_prediction" : "epsilon"},
              {"timestep_spacing", "leading"},
              {"steps_offset", 1},
              {"set_alpha_to_one", false},
              {"clip_sample", false}};
}

text::ClipTokenizer load_tokenizer(const io::ModelFiles& files, const LoadOptions& options) {
  const auto source = options.tokenizer ? options.tokenizer : files.tokenizer;
  if (!source) {
    throw Error(files.path.string() +
                ": no tokenizer beside the model; pass --tokenizer with a folder holding vocab.json and "
                "merges.txt, or CLIP's bpe_simple_vocab_16e6.txt.gz");
  }
  auto tokenizer = text::ClipTokenizer::from_path(*source);
  // Original checkpoints carry no tokenizer config: OpenCLIP (SD 2.x) pads with "!", CLIP with the end token.
  if (files.layout == io::ModelFiles::Layout::SingleFile) {
    if (files.family == "sd2") {
      tokenizer.set_pad_token("!");
    } else {
      tokenizer.set_pad_id(tokenizer.end_id());
    }
  }
  return tokenizer;
}

template <typename Module, typename Config>
Module build(const io::ComponentWeights& weights, const json& original_config,
             const std::set<std::string>& optional = {}) {
  const auto config = weights.config.is_null() ? Config::infer(weights.tensors, original_config)
                                               : Config::from_json(weights.config);
  Module module(config);
  models::load_weights(*module, weights.tensors, {weights.source, weights.file_names, optional});
  module->eval();
  return module;
}

}  // namespace

StableDiffusionModel StableDiffusionModel::load(const fs::path& path, const LoadOptions& options) {
  auto files = io::load_model_files(path);
  StableDiffusionModel model(load_tokenizer(files, options));
  model.name = fs::path(path).filename().replace_extension().string();
  if (model.name.empty()) model.name = fs::path(path).parent_path().filename().string();
  model.text_encoder = build<models::ClipTextModel, models::TextEncoderConfig>(
      files.text_encoder, files.original_config, models::ClipTextModelImpl::optional_tensors());
  files.text_encoder.tensors.clear();
  model.unet = build<models::UNet2DConditionModel, models::UNetConfig>(files.unet, files.original_config);
  files.unet.tensors.clear();
  model.vae = build<models::AutoencoderKL, models::VaeConfig>(files.vae, files.original_config);
  files.vae.tensors.clear();
  if (options.scheduler_config) {
    model.scheduler = sampling::SchedulerConfig::from_json(read_json_file(*options.scheduler_config));
  } else {
    model.scheduler = sampling::SchedulerConfig::from_json(
        files.scheduler_config.is_null() ? single_file_scheduler_config(files.original_config) : files.scheduler_config);
  }
  return model;
}

at::Tensor StableDiffusionModel::encode_prompt(const std::string& prompt) {
  torch::NoGradGuard no_grad;
  const auto ids = tokenizer.encode_padded(prompt);
  return text_encoder->encode(at::tensor(ids, at::kLong).unsqueeze(0));
}

at::Tensor StableDiffusionModel::decode_latents(const at::Tensor& latents) {
  torch::NoGradGuard no_grad;
  return vae->decode(latents / vae->config.scaling_factor);
}

}  // namespace diffuse::pipeline
