#include "pipeline/convert.h"

#include <algorithm>
#include <fstream>
#include <map>

#include "io/checkpoint_file.h"
#include "io/controlnet_files.h"
#include "io/diffusers_folder.h"
#include "io/embedding_file.h"
#include "io/ldm_export.h"
#include "io/model_files.h"
#include "io/safetensors_writer.h"
#include "io/tensor_file.h"
#include "models/config.h"
#include "pipeline/component_configs.h"
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
  io::OriginalConfig family_defaults;
  io::add_family_defaults(family_defaults, files.family);
  const auto unet = models::UNetConfig::from_json(files.unet.config);
  const auto text = models::TextEncoderConfig::from_json(files.text_encoder.config);
  const auto vae = models::VaeConfig::from_json(files.vae.config);
  const bool v = scheduler_config(files).prediction == sampling::Prediction::VPrediction;
  bool agrees = !v;
  try {
    agrees = agrees && models::UNetConfig::infer(files.unet.tensors, unet_hints(family_defaults)).to_json() ==
                           unet.to_json();
    agrees = agrees && models::TextEncoderConfig::infer(files.text_encoder.tensors,
                                                        text_encoder_hints(family_defaults.text_encoder))
                               .to_json() == text.to_json();
    agrees = agrees && models::VaeConfig::infer(files.vae.tensors, vae_hints(family_defaults)).to_json() ==
                           vae.to_json();
    if (files.family == io::LdmFamily::Sdxl) {
      agrees = agrees && models::TextEncoderConfig::infer(files.text_encoder_2.tensors,
                                                          text_encoder_hints(family_defaults.text_encoder_2))
                                 .to_json() == models::TextEncoderConfig::from_json(files.text_encoder_2.config).to_json();
    }
  } catch (const Error&) {
    agrees = false;  // the shapes alone do not even say (an unusual head width)
  }
  if (agrees) return nullptr;
  if (files.family == io::LdmFamily::Sdxl) {
    // An sgm config is not written: say so where the defaults would not give the folder's model.
    notes.push_back("this SDXL model's attention heads, activation or sizes are not SDXL's usual ones and not in "
                    "the tensors' shapes: keep its sgm config (ldm_config.json or <name>.json) beside the file");
    return nullptr;
  }
  io::OriginalConfig original;
  original.unet.image_size = unet.sample_size;
  const bool same_heads = std::all_of(unet.num_heads.begin(), unet.num_heads.end(), [&](int h) { return h == unet.num_heads[0]; });
  if (same_heads) {
    original.unet.num_heads = unet.num_heads[0];
  } else {
    original.unet.num_head_channels = unet.block_out_channels[0] / unet.num_heads[0];
  }
  original.unet.norm_num_groups = unet.norm_num_groups;
  original.vae.scale_factor = vae.scaling_factor;
  original.vae.resolution = vae.sample_size;
  original.vae.norm_num_groups = vae.norm_num_groups;
  original.text_encoder.num_heads = text.num_heads;
  original.text_encoder.activation = text.hidden_act;
  original.text_encoder.bos_token_id = text.bos_token_id;
  original.text_encoder.eos_token_id = text.eos_token_id;
  original.text_encoder.pad_token_id = text.pad_token_id;
  original.v_prediction = v;
  return io::original_config_json(original, files.family);
}

ConvertReport folder_to_single_file(const fs::path& in, const fs::path& out, const ConvertOptions& options) {
  const auto files = io::load_model_files(in, io::loading_dtype(in, at::kFloat));
  TensorMap tensors;
  if (files.family == io::LdmFamily::Sdxl) {
    tensors = io::export_ldm_checkpoint(in_type(files.unet.tensors, options), in_type(files.vae.tensors, options),
                                        in_type(files.text_encoder.tensors, options),
                                        in_type(files.text_encoder_2.tensors, options));
  } else {
    tensors = io::export_ldm_checkpoint(
        in_type(files.unet.tensors, options), in_type(files.vae.tensors, options),
        in_type(files.text_encoder.tensors, options),
        files.family == io::LdmFamily::Sd2 ? io::TextEncoderLayout::OpenClip : io::TextEncoderLayout::Clip);
  }
  ConvertReport report;
  report.kind = std::string("diffusers folder -> single file (") + io::ldm_family_name(files.family) +
                ", original names)";
  report.tensors = tensors.size();
  io::write_safetensors(out, tensors, {{"format", "pt"}, {"converted_from", in.filename().string()}});
  if (const json sidecar = sidecar_config(files, report.notes); !sidecar.is_null()) {
    auto config_path = out;
    config_path.replace_extension(".json");
    io::write_json_file(config_path, sidecar);
    report.notes.push_back("the attention heads, activation or prediction type are not in the tensors' shapes: " +
                           config_path.string() + " beside the file says them; keep the two together");
  }
  if (files.tokenizer) {
    report.notes.push_back("a single file holds no tokenizer: keep " + files.tokenizer->string() +
                           " beside it as tokenizer/, or name a tokenizer when generating");
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
    // Its own config keeps what only it says: the context length (the built-in model's is 32), the
    // special tokens.
    if (fs::is_regular_file(*source / "tokenizer_config.json")) {
      auto config = read_json_file(*source / "tokenizer_config.json");
      if (pad_token) config["pad_token"] = *pad_token;
      io::write_json_file(folder / "tokenizer_config.json", config);
      return true;
    }
  } else {
    const auto vocabulary = text::detail::load_clip_bpe_gz(*source);
    json vocab = json::object();
    for (const auto& [token, id] : vocabulary->encoder) vocab[token] = id;
    io::write_json_file(folder / "vocab.json", vocab);
    std::vector<const std::string*> merges(vocabulary->merge_ranks.size());
    for (const auto& [pair, rank] : vocabulary->merge_ranks) merges.at(static_cast<size_t>(rank)) = &pair;
    std::ofstream file(folder / "merges.txt");
    file << "#version: 0.2\n";
    for (const auto* pair : merges) file << *pair << "\n";
    if (!file) throw Error((folder / "merges.txt").string() + ": cannot write");
  }
  io::write_json_file(folder / "tokenizer_config.json",
                      {{"tokenizer_class", "CLIPTokenizer"},
                       {"model_max_length", 77},
                       {"bos_token", text::detail::kStartOfText},
                       {"eos_token", text::detail::kEndOfText},
                       {"unk_token", text::detail::kEndOfText},
                       {"pad_token", pad_token.value_or(text::detail::kEndOfText)}});
  return true;
}

ConvertReport single_file_to_folder(const fs::path& in, const fs::path& out, const ConvertOptions& options) {
  const auto files = io::load_model_files(in, io::loading_dtype(in, at::kFloat));
  ConvertReport report;
  report.kind = std::string("single file -> diffusers folder (") + io::ldm_family_name(files.family) + ")";
  // Written beside `out` under a hidden name and renamed at the end: never half a folder at `out`.
  const fs::path parent = out.parent_path().empty() ? fs::path(".") : out.parent_path();
  const fs::path staging = parent / ("." + out.filename().string() + ".partial");
  std::error_code ignored;
  fs::remove_all(staging, ignored);
  try {
    const bool xl = files.family == io::LdmFamily::Sdxl;
    io::DiffusersPipelineFiles folder;
    folder.unet = {unet_config(files.unet, files.original).to_json(), in_type(files.unet.tensors, options)};
    folder.vae = {vae_config(files.vae, files.original).to_json(), in_type(files.vae.tensors, options)};
    folder.text_encoder = {text_encoder_config(files.text_encoder, files.original.text_encoder).to_json(),
                           in_type(files.text_encoder.tensors, options)};
    if (xl) {
      folder.text_encoder_2 =
          io::DiffusersComponent{text_encoder_config(files.text_encoder_2, files.original.text_encoder_2).to_json(),
                                 in_type(files.text_encoder_2.tensors, options)};
      folder.force_zeros_for_empty_prompt = files.force_zeros_for_empty_prompt;
    }
    folder.scheduler = scheduler_config(files).to_json();
    io::write_diffusers_pipeline(staging, folder);
    report.tensors = folder.unet.tensors.size() + folder.vae.tensors.size() + folder.text_encoder.tensors.size() +
                     (xl ? folder.text_encoder_2->tensors.size() : 0);
    if (!write_tokenizer(files.tokenizer, files.pad_token, staging / "tokenizer")) {
      report.notes.push_back("no tokenizer beside " + in.string() +
                             ": the folder has no tokenizer/ (copy one in, or name a tokenizer when generating)");
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

// A ControlNet between its two layouts: a diffusers folder -> one file under lllyasviel's names
// (control_model.*), a single file -> a folder (config.json inferred from the shapes, as loading
// does without a base model, and the weights).
ConvertReport convert_controlnet(const fs::path& in, const fs::path& out, bool to_file, const ConvertOptions& options) {
  ConvertReport report;
  // As stored (where every floating tensor has one type), unless a precision is asked for.
  const fs::path weights = fs::is_directory(in) ? in / "diffusion_pytorch_model.safetensors" : in;
  const auto stored = fs::is_regular_file(weights) ? io::loading_dtype(weights, at::kFloat) : at::kFloat;
  const auto files = io::load_controlnet_files(in, options.dtype.value_or(stored));
  const TensorMap& tensors = files.tensors;
  report.tensors = tensors.size();
  if (to_file) {
    io::write_safetensors(out, io::export_controlnet_checkpoint(tensors),
                          {{"format", "pt"}, {"converted_from", in.filename().string()}});
    report.kind = "ControlNet: diffusers folder -> single file (lllyasviel's layout, control_model.*)";
    return report;
  }
  const auto config = files.config.is_null() ? models::ControlNetConfig::infer(files.tensors)
                                             : models::ControlNetConfig::from_json(files.config);
  fs::create_directories(out);
  auto config_json = config.to_json();
  config_json["_diffusers_version"] = io::kDiffusersVersion;
  io::write_json_file(out / "config.json", config_json);
  io::write_safetensors(out / "diffusion_pytorch_model.safetensors", tensors, {{"format", "pt"}});
  report.kind = "ControlNet: single file -> diffusers folder";
  report.notes.push_back("attention heads do not show in the shapes: config.json says " +
                         json(config.unet.num_heads).dump() + " (SD 1.x: 8 per level, SD 2.x and SDXL: 64-wide); "
                         "loading with a base model takes the base UNet's instead");
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
  if (io::is_controlnet_path(in) && (to_file == fs::is_directory(in, error))) return convert_controlnet(in, out, to_file, options);
  if (fs::is_directory(in, error)) {
    if (!to_file) throw InvalidParameter("output", in.string() + " is a diffusers folder already: convert it to a .safetensors file");
    return folder_to_single_file(in, out, options);
  }
  if (to_file) return file_to_safetensors(in, out, options);
  return single_file_to_folder(in, out, options);
}

}  // namespace diffuse::pipeline
