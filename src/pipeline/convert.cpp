#include "pipeline/convert.h"

#include <algorithm>
#include <fstream>
#include <map>

#include "io/checkpoint_file.h"
#include "io/embedding_file.h"
#include "io/ldm_export.h"
#include "io/model_files.h"
#include "io/safetensors_writer.h"
#include "io/tensor_file.h"
#include "models/config.h"
#include "text/clip_vocabulary.h"
#include "util/error.h"
#include "util/json.h"

namespace diffuse::pipeline {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

at::Tensor in_type(const at::Tensor& tensor, const ConvertOptions& options) {
  if (options.dtype && at::isFloatingType(tensor.scalar_type()) && tensor.scalar_type() != *options.dtype) {
    return tensor.to(*options.dtype);
  }
  return tensor;
}

TensorMap in_type(const TensorMap& tensors, const ConvertOptions& options) {
  TensorMap out;
  for (const auto& [name, tensor] : tensors) out.emplace(name, in_type(tensor, options));
  return out;
}

void write_json(const fs::path& path, const json& value) {
  std::ofstream file(path);
  file << value.dump(2) << "\n";
  if (!file) throw Error(path.string() + ": cannot write");
}

// A file of tensors, names kept: a checkpoint's state dict, or an embedding .pt as emb_params.
ConvertReport file_to_safetensors(const fs::path& in, const fs::path& out, const ConvertOptions& options) {
  ConvertReport report;
  const auto file = io::TensorFile::open(in);
  TensorMap tensors;
  for (const auto& info : file.tensors()) tensors.emplace(info.name, in_type(file.tensor(info.name), options));
  if (tensors.empty() && io::is_embedding_file(in)) {
    const auto embedding = io::read_embedding_file(in);
    if (embedding.vectors_2.defined()) {
      tensors.emplace("clip_l", in_type(embedding.vectors, options));
      tensors.emplace("clip_g", in_type(embedding.vectors_2, options));
    } else {
      tensors.emplace("emb_params", in_type(embedding.vectors, options));
    }
    report.kind = "embedding -> safetensors (emb_params, as AUTOMATIC1111 saves it)";
  } else {
    if (tensors.empty()) throw Error(in.string() + ": holds no tensors to convert");
    report.kind = std::string(io::is_checkpoint_path(in) ? "checkpoint" : "safetensors") +
                  " -> safetensors (tensors under their own names)";
  }
  report.tensors = tensors.size();
  io::write_safetensors(out, tensors, {{"format", "pt"}, {"converted_from", in.filename().string()}});
  return report;
}

// What a single file cannot show in its shapes -- attention heads, the text encoder's activation, v
// prediction, the latent scale -- as an original (LDM) config for <stem>.json beside it, where the
// defaults loading falls back on would differ from the folder's configs; null where they agree.
json sidecar_config(const io::ModelFiles& files, std::vector<std::string>& notes) {
  if (files.family == "sdxl") {
    // An sgm config is not written: say so where the defaults would not give the folder's model.
    try {
      const bool same = models::TextEncoderConfig::infer(files.text_encoder.tensors, nullptr).num_heads ==
                            models::TextEncoderConfig::from_json(files.text_encoder.config).num_heads &&
                        models::UNetConfig::infer(files.unet.tensors, nullptr).num_heads ==
                            models::UNetConfig::from_json(files.unet.config).num_heads;
      if (same) return nullptr;
    } catch (const Error&) {
    }
    notes.push_back("this SDXL model's attention heads are not SDXL's usual ones and not in the tensors' shapes: "
                    "keep its sgm config (ldm_config.json or <name>.json) beside the file");
    return nullptr;
  }
  const json family_defaults =
      files.family == "sd2"
          ? json{{"model", {{"params", {{"cond_stage_config", {{"target", "ldm.modules.encoders.modules.FrozenOpenCLIPEmbedder"}}}}}}}}
          : json(nullptr);
  const auto unet = models::UNetConfig::from_json(files.unet.config);
  const auto text = models::TextEncoderConfig::from_json(files.text_encoder.config);
  const auto vae = models::VaeConfig::from_json(files.vae.config);
  const bool v = files.scheduler_config.value("prediction_type", "epsilon") == "v_prediction";
  bool agrees = !v;
  try {
    const auto inferred_unet = models::UNetConfig::infer(files.unet.tensors, family_defaults);
    agrees = agrees && inferred_unet.num_heads == unet.num_heads && inferred_unet.sample_size == unet.sample_size;
    const auto inferred_text = models::TextEncoderConfig::infer(files.text_encoder.tensors, family_defaults);
    agrees = agrees && inferred_text.num_heads == text.num_heads && inferred_text.hidden_act == text.hidden_act;
    agrees = agrees && models::VaeConfig::infer(files.vae.tensors, family_defaults).scaling_factor == vae.scaling_factor;
  } catch (const Error&) {
    agrees = false;  // the shapes alone do not even say (an unusual head width)
  }
  if (agrees) return nullptr;
  json unet_params = {{"image_size", unet.sample_size}};
  const bool same_heads = std::all_of(unet.num_heads.begin(), unet.num_heads.end(), [&](int h) { return h == unet.num_heads[0]; });
  if (same_heads) {
    unet_params["num_heads"] = unet.num_heads[0];
    unet_params["num_head_channels"] = -1;
  } else {
    unet_params["num_head_channels"] = unet.block_out_channels[0] / unet.num_heads[0];
  }
  json params = {
      {"scale_factor", vae.scaling_factor},
      {"unet_config", {{"params", unet_params}}},
      {"cond_stage_config",
       {{"target", files.family == "sd2" ? "ldm.modules.encoders.modules.FrozenOpenCLIPEmbedder"
                                         : "ldm.modules.encoders.modules.FrozenCLIPEmbedder"},
        {"facts", {{"num_attention_heads", text.num_heads}, {"hidden_act", text.hidden_act}}}}},
  };
  if (v) params["parameterization"] = "v";
  return json{{"model", {{"target", "ldm.models.diffusion.ddpm.LatentDiffusion"}, {"params", params}}}};
}

ConvertReport folder_to_single_file(const fs::path& in, const fs::path& out, const ConvertOptions& options) {
  const auto files = io::load_model_files(in, io::loading_dtype(in, at::kFloat));
  TensorMap tensors;
  if (files.family == "sdxl") {
    tensors = io::export_ldm_checkpoint(in_type(files.unet.tensors, options), in_type(files.vae.tensors, options),
                                        in_type(files.text_encoder.tensors, options),
                                        in_type(files.text_encoder_2.tensors, options));
  } else {
    tensors = io::export_ldm_checkpoint(
        in_type(files.unet.tensors, options), in_type(files.vae.tensors, options),
        in_type(files.text_encoder.tensors, options),
        files.family == "sd2" ? io::TextEncoderLayout::OpenClip : io::TextEncoderLayout::Clip);
  }
  ConvertReport report;
  report.kind = "diffusers folder -> single file (" + files.family + ", original names)";
  report.tensors = tensors.size();
  io::write_safetensors(out, tensors, {{"format", "pt"}, {"converted_from", in.filename().string()}});
  if (const json sidecar = sidecar_config(files, report.notes); !sidecar.is_null()) {
    auto config_path = out;
    config_path.replace_extension(".json");
    write_json(config_path, sidecar);
    report.notes.push_back("the attention heads, activation or prediction type are not in the tensors' shapes: " +
                           config_path.string() + " beside the file says them; keep the two together");
  }
  if (files.tokenizer) {
    report.notes.push_back("a single file holds no tokenizer: keep " + files.tokenizer->string() +
                           " beside it as tokenizer/, or pass --tokenizer");
  }
  return report;
}

// tokenizer/: vocab.json and merges.txt (written from CLIP's .gz when that is what there is) and a
// tokenizer_config.json naming the pad token the model needs.
bool write_tokenizer(const std::optional<fs::path>& source, const std::optional<std::string>& pad_token,
                     const fs::path& folder) {
  if (!source) return false;
  fs::create_directories(folder);
  if (fs::is_directory(*source)) {
    fs::copy_file(*source / "vocab.json", folder / "vocab.json");
    fs::copy_file(*source / "merges.txt", folder / "merges.txt");
  } else {
    const auto vocabulary = text::detail::load_clip_bpe_gz(*source);
    json vocab = json::object();
    for (const auto& [token, id] : vocabulary->encoder) vocab[token] = id;
    write_json(folder / "vocab.json", vocab);
    std::vector<const std::string*> merges(vocabulary->merge_ranks.size());
    for (const auto& [pair, rank] : vocabulary->merge_ranks) merges.at(static_cast<size_t>(rank)) = &pair;
    std::ofstream file(folder / "merges.txt");
    file << "#version: 0.2\n";
    for (const auto* pair : merges) file << *pair << "\n";
    if (!file) throw Error((folder / "merges.txt").string() + ": cannot write");
  }
  write_json(folder / "tokenizer_config.json",
             {{"tokenizer_class", "CLIPTokenizer"},
              {"model_max_length", 77},
              {"bos_token", text::detail::kStartOfText},
              {"eos_token", text::detail::kEndOfText},
              {"unk_token", text::detail::kEndOfText},
              {"pad_token", pad_token.value_or(text::detail::kEndOfText)}});
  return true;
}

void write_component(const fs::path& folder, const json& config, const TensorMap& tensors, const char* weights) {
  fs::create_directories(folder);
  write_json(folder / "config.json", config);
  io::write_safetensors(folder / weights, tensors);
}

ConvertReport single_file_to_folder(const fs::path& in, const fs::path& out, const ConvertOptions& options) {
  const auto files = io::load_model_files(in, io::loading_dtype(in, at::kFloat));
  ConvertReport report;
  report.kind = "single file -> diffusers folder (" + files.family + ")";
  // Written beside `out` under a hidden name and renamed at the end: never half a folder at `out`.
  const fs::path parent = out.parent_path().empty() ? fs::path(".") : out.parent_path();
  const fs::path staging = parent / ("." + out.filename().string() + ".partial");
  std::error_code ignored;
  fs::remove_all(staging, ignored);
  try {
    fs::create_directories(staging);
    const bool xl = files.family == "sdxl";
    const auto unet = in_type(files.unet.tensors, options);
    const auto vae = in_type(files.vae.tensors, options);
    const auto text_encoder = in_type(files.text_encoder.tensors, options);
    write_component(staging / "unet", models::UNetConfig::infer(files.unet.tensors, files.original_config).to_json(),
                    unet, "diffusion_pytorch_model.safetensors");
    write_component(staging / "vae", models::VaeConfig::infer(files.vae.tensors, files.original_config).to_json(),
                    vae, "diffusion_pytorch_model.safetensors");
    write_component(staging / "text_encoder",
                    models::TextEncoderConfig::infer(files.text_encoder.tensors, files.original_config).to_json(),
                    text_encoder, "model.safetensors");
    report.tensors = unet.size() + vae.size() + text_encoder.size();
    json index = {{"_class_name", xl ? "StableDiffusionXLPipeline" : "StableDiffusionPipeline"},
                  {"_diffusers_version", "0.27.2"},
                  {"unet", {"diffusers", "UNet2DConditionModel"}},
                  {"vae", {"diffusers", "AutoencoderKL"}},
                  {"text_encoder", {"transformers", "CLIPTextModel"}},
                  {"tokenizer", {"transformers", "CLIPTokenizer"}},
                  {"scheduler", {"diffusers", files.scheduler_config.value("_class_name", "PNDMScheduler")}}};
    if (xl) {
      const auto text_encoder_2 = in_type(files.text_encoder_2.tensors, options);
      write_component(staging / "text_encoder_2",
                      models::TextEncoderConfig::infer(files.text_encoder_2.tensors, files.original_config).to_json(),
                      text_encoder_2, "model.safetensors");
      report.tensors += text_encoder_2.size();
      index["text_encoder_2"] = {"transformers", "CLIPTextModelWithProjection"};
      index["tokenizer_2"] = {"transformers", "CLIPTokenizer"};
      index["force_zeros_for_empty_prompt"] = files.force_zeros_for_empty_prompt;
    } else {
      index["safety_checker"] = {nullptr, nullptr};
      index["feature_extractor"] = {nullptr, nullptr};
      index["requires_safety_checker"] = false;
    }
    fs::create_directories(staging / "scheduler");
    json scheduler = files.scheduler_config;
    if (!scheduler.contains("_class_name")) scheduler["_class_name"] = "PNDMScheduler";
    write_json(staging / "scheduler" / "scheduler_config.json", scheduler);
    write_json(staging / "model_index.json", index);
    if (!write_tokenizer(files.tokenizer, files.pad_token, staging / "tokenizer")) {
      report.notes.push_back("no tokenizer beside " + in.string() +
                             ": the folder has no tokenizer/ (copy one in, or pass --tokenizer when generating)");
    } else if (xl) {
      write_tokenizer(files.tokenizer_2, files.pad_token_2, staging / "tokenizer_2");
    }
    fs::rename(staging, out);
  } catch (...) {
    fs::remove_all(staging, ignored);
    throw;
  }
  return report;
}

}  // namespace

ConvertReport convert_model(const fs::path& in, const fs::path& out, const ConvertOptions& options) {
  std::error_code error;
  if (!fs::exists(in, error)) throw Error(in.string() + ": no such file or folder");
  if (fs::is_directory(out, error)) {
    throw InvalidParameter("output", out.string() + " already exists as a folder: remove it or name another");
  }
  if (io::is_checkpoint_path(out)) {
    throw InvalidParameter("output", out.string() + ": pickles are never written; convert to .safetensors");
  }
  const bool to_file = out.extension() == ".safetensors";
  if (!to_file && out.has_extension()) {
    throw InvalidParameter("output", out.string() + ": write a .safetensors file, or a diffusers folder (a path "
                                                    "without an extension)");
  }
  if (fs::exists(out, error) && !to_file) throw InvalidParameter("output", out.string() + " already exists");
  if (fs::is_directory(in, error)) {
    if (!to_file) throw InvalidParameter("output", in.string() + " is a diffusers folder already: convert it to a .safetensors file");
    return folder_to_single_file(in, out, options);
  }
  if (to_file) return file_to_safetensors(in, out, options);
  return single_file_to_folder(in, out, options);
}

}  // namespace diffuse::pipeline
