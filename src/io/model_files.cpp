#include "io/model_files.h"

#include <fstream>
#include <set>

#include "io/ldm_layout.h"
#include "io/tensor_file.h"
#include "util/error.h"
#include "util/json.h"

namespace diffuse::io {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A floating-point tensor as `dtype`; other types as stored.
at::Tensor read_tensor(const TensorFile& file, const std::string& name, at::ScalarType dtype) {
  const bool floating = at::isFloatingType(file.info(name).scalar_type);
  return file.tensor(name, floating ? std::optional<at::ScalarType>(dtype) : std::nullopt);
}

// ---- Diffusers folders -----------------------------------------------------------------------------

// Preference order: full precision first; a ".fp16" variant only when it is all there is.
const char* const kWeightFiles[] = {
    "diffusion_pytorch_model.safetensors", "model.safetensors",
    "diffusion_pytorch_model.fp16.safetensors", "model.fp16.safetensors",
    // torch checkpoints, read without running them (io/checkpoint_file.h)
    "diffusion_pytorch_model.bin", "pytorch_model.bin",
    "diffusion_pytorch_model.fp16.bin", "pytorch_model.fp16.bin",
};

// The weight files of a component: one file, or the shards an index names.
std::vector<fs::path> component_weight_files(const fs::path& folder, std::string& source) {
  for (const char* name : kWeightFiles) {
    const fs::path file = folder / name;
    if (fs::is_regular_file(file)) {
      source = file.string();
      return {file};
    }
    const fs::path index = folder / (std::string(name) + ".index.json");
    if (fs::is_regular_file(index)) {
      const json map = read_json_file(index);
      if (!map.is_object() || !map.contains("weight_map") || !map["weight_map"].is_object()) {
        throw Error(index.string() + ": no weight_map object");
      }
      std::vector<fs::path> shards;
      std::set<std::string> seen;
      for (const auto& [tensor, shard] : map["weight_map"].items()) {
        if (!shard.is_string()) throw Error(index.string() + ": weight_map entry '" + tensor + "' is not a file name");
        const auto shard_name = shard.get<std::string>();
        if (shard_name.find('/') != std::string::npos) {
          throw Error(index.string() + ": shard '" + shard_name + "' is outside the folder");
        }
        if (seen.insert(shard_name).second) shards.push_back(folder / shard_name);
      }
      source = index.string();
      return shards;
    }
  }
  throw Error(folder.string() + ": no weights file (expected diffusion_pytorch_model.safetensors or model.safetensors)");
}

ComponentWeights load_diffusers_component(const fs::path& root, const std::string& component,
                                          at::ScalarType dtype, std::vector<std::string>& ignored) {
  const fs::path folder = root / component;
  if (!fs::is_directory(folder)) throw Error(root.string() + ": diffusers model has no " + component + "/ folder");
  const fs::path config = folder / "config.json";
  if (!fs::is_regular_file(config)) throw Error(config.string() + ": missing");

  ComponentWeights weights;
  weights.config = read_json_file(config);
  for (const auto& file_path : component_weight_files(folder, weights.source)) {
    const auto file = TensorFile::open(file_path);
    for (const auto& info : file.tensors()) {
      // transformers saves CLIP's position_ids buffer; our modules (like the single-file mapping)
      // do not treat it as a weight.
      if (info.name.size() >= 12 && info.name.compare(info.name.size() - 12, 12, "position_ids") == 0) {
        ignored.push_back(component + "/" + info.name);
        continue;
      }
      if (!weights.tensors.emplace(info.name, read_tensor(file, info.name, dtype)).second) {
        throw Error(file_path.string() + ": tensor '" + info.name + "' appears in more than one shard");
      }
    }
  }
  return weights;
}

ModelFiles load_diffusers(const fs::path& root, at::ScalarType dtype) {
  ModelFiles model;
  model.layout = ModelFiles::Layout::Diffusers;
  model.path = root;
  const json index = read_json_file(root / "model_index.json");  // components are found by folder name
  model.unet = load_diffusers_component(root, "unet", dtype, model.ignored);
  model.vae = load_diffusers_component(root, "vae", dtype, model.ignored);
  model.text_encoder = load_diffusers_component(root, "text_encoder", dtype, model.ignored);
  // SDXL: a second text encoder (OpenCLIP bigG with its projection) and its tokenizer.
  const bool two_encoders = index.is_object() && index.contains("text_encoder_2") && index["text_encoder_2"].is_array() &&
                            !index["text_encoder_2"].empty() && !index["text_encoder_2"][0].is_null();
  if (two_encoders) {
    model.text_encoder_2 = load_diffusers_component(root, "text_encoder_2", dtype, model.ignored);
    if (fs::is_directory(root / "tokenizer_2")) model.tokenizer_2 = root / "tokenizer_2";
    model.force_zeros_for_empty_prompt = index.value("force_zeros_for_empty_prompt", true);
  }

  const fs::path scheduler = root / "scheduler" / "scheduler_config.json";
  if (fs::exists(scheduler)) model.scheduler_config = read_json_file(scheduler);
  if (fs::is_directory(root / "tokenizer")) model.tokenizer = root / "tokenizer";
  // OpenCLIP-H (SD 2.x) uses exact GELU; CLIP ViT-L (SD 1.x) quick_gelu.
  const auto& text_config = model.text_encoder.config;
  const bool gelu = text_config.is_object() && text_config.value("hidden_act", "") == "gelu";
  model.family = two_encoders ? LdmFamily::Sdxl : gelu ? LdmFamily::Sd2 : LdmFamily::Sd1;
  return model;
}

// ---- Single files ----------------------------------------------------------------------------------

// "<stem>.json" only counts when it looks like an original config: tools also keep unrelated
// per-model notes under that name. "ldm_config.json" is ours, so a broken one is an error.
json find_original_config(const fs::path& checkpoint) {
  fs::path stem_json = checkpoint;
  stem_json.replace_extension(".json");
  if (fs::is_regular_file(stem_json)) {
    std::ifstream in(stem_json, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // The parser recurses once per level: a file of nested brackets would overflow the stack.
    if (!json_nests_deeper_than(text)) {
      const json config = json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (config.is_object() && config.contains("model")) return config;
    }
  }
  const fs::path ldm_config = checkpoint.parent_path() / "ldm_config.json";
  if (fs::is_regular_file(ldm_config)) return read_json_file(ldm_config);
  return nullptr;
}

std::optional<fs::path> find_tokenizer_beside(const fs::path& checkpoint) {
  const fs::path dir = checkpoint.parent_path().empty() ? fs::path(".") : checkpoint.parent_path();
  if (fs::is_directory(dir / "tokenizer")) return dir / "tokenizer";
  if (fs::is_regular_file(dir / "vocab.json") && fs::is_regular_file(dir / "merges.txt")) return dir;
  if (fs::is_regular_file(dir / "bpe_simple_vocab_16e6.txt.gz")) return dir / "bpe_simple_vocab_16e6.txt.gz";
  return std::nullopt;
}

at::Tensor apply_transform(const at::Tensor& tensor, const TensorRename& rename, const std::string& file) {
  const auto fail = [&](const std::string& expected) {
    return Error(file + ": tensor '" + rename.source + "' has shape " + c10::str(tensor.sizes()) + ", expected " +
                 expected);
  };
  switch (rename.transform) {
    case Transform::None:
      return tensor;
    case Transform::ConvToLinear:
      if (tensor.dim() == 2) return tensor;  // some exporters already store it as linear
      if (tensor.dim() != 4 || tensor.size(2) != 1 || tensor.size(3) != 1) throw fail("[C, C, 1, 1]");
      return tensor.reshape({tensor.size(0), tensor.size(1)});
    case Transform::ChunkOf3: {
      if (tensor.dim() < 1 || tensor.size(0) % 3 != 0) throw fail("a first dimension divisible by 3");
      const int64_t rows = tensor.size(0) / 3;
      return tensor.narrow(0, rename.chunk * rows, rows);
    }
    case Transform::Transpose:
      // A copy, so the module gets an ordinary row-major weight.
      if (tensor.dim() != 2) throw fail("a matrix [in, out]");
      return tensor.t().contiguous();
  }
  return tensor;
}

ModelFiles load_single_file(const fs::path& path, at::ScalarType dtype) {
  const auto file = TensorFile::open(path);
  ModelFiles model;
  model.layout = ModelFiles::Layout::SingleFile;
  model.path = path;
  model.original = read_original_config(find_original_config(path));
  model.tokenizer = find_tokenizer_beside(path);

  std::vector<std::string> keys;
  for (const auto& info : file.tensors()) keys.push_back(info.name);
  const LdmPlan plan = plan_ldm_conversion(keys, model.original.open_clip_layer, path.string());
  model.family = plan.family;
  add_family_defaults(model.original, model.family);
  model.ignored = plan.ignored;
  // No tokenizer config says these for a single file. OpenCLIP's tokenizer (SD 2.x; SDXL's second)
  // pads with "!" (id 0), CLIP's with its end token.
  model.pad_token = model.family == LdmFamily::Sd2 ? "!" : "<|endoftext|>";
  if (model.family == LdmFamily::Sdxl) {
    // Both SDXL tokenizers have CLIP's vocabulary: the one beside the file serves both.
    model.tokenizer_2 = model.tokenizer;
    model.pad_token_2 = "!";
    model.force_zeros_for_empty_prompt = true;  // as SDXL base's model_index.json says
  }

  const auto component_of = [&](Component component) -> ComponentWeights& {
    switch (component) {
      case Component::Unet: return model.unet;
      case Component::Vae: return model.vae;
      case Component::TextEncoder: return model.text_encoder;
      case Component::TextEncoder2: return model.text_encoder_2;
      case Component::ControlNet: break;  // a table of its own (io/controlnet_files.h), never a model's
    }
    throw Error(path.string() + ": unknown component");
  };
  for (auto* component : {&model.unet, &model.vae, &model.text_encoder}) component->source = path.string();
  if (model.family == LdmFamily::Sdxl) model.text_encoder_2.source = path.string();
  for (const auto& rename : plan.renames) {
    // Convert after the transform, so a q/k/v chunk copies only its own third.
    at::Tensor tensor = apply_transform(file.tensor(rename.source), rename, path.string());
    if (at::isFloatingType(tensor.scalar_type()) && tensor.scalar_type() != dtype) tensor = tensor.to(dtype);
    auto& target = component_of(rename.component);
    target.tensors.emplace(rename.target, std::move(tensor));
    target.file_names.emplace(rename.target, rename.source);
  }
  return model;
}

}  // namespace

ModelFiles load_model_files(const fs::path& path, at::ScalarType dtype) {
  std::error_code error;
  const auto status = fs::status(path, error);
  if (!fs::exists(status)) throw Error(path.string() + ": no such file or folder");
  if (fs::is_directory(status)) {
    if (!fs::is_regular_file(path / "model_index.json")) {
      throw Error(path.string() + ": not a diffusers model folder (no model_index.json)");
    }
    return load_diffusers(path, dtype);
  }
  return load_single_file(path, dtype);
}

ComponentWeights load_component_folder(const fs::path& folder, at::ScalarType dtype) {
  auto normal = folder.lexically_normal();
  if (normal.filename().empty()) normal = normal.parent_path();  // "taesd/" -> "taesd"
  std::vector<std::string> ignored;
  return load_diffusers_component(normal.parent_path(), normal.filename().string(), dtype, ignored);
}

at::ScalarType loading_dtype(const fs::path& path, at::ScalarType wanted) {
  std::vector<fs::path> files;
  if (fs::is_directory(path)) {
    // A folder's components: read as stored too, so an fp16 text encoder reaches its fp32 module
    // exactly rather than through the UNet's bf16.
    for (const char* component : {"unet", "vae", "text_encoder", "text_encoder_2"}) {
      if (!fs::is_directory(path / component)) continue;
      std::string source;
      for (auto& file : component_weight_files(path / component, source)) files.push_back(std::move(file));
    }
  } else {
    files.push_back(path);
  }
  std::optional<at::ScalarType> stored;
  for (const auto& file_path : files) {
    const auto file = TensorFile::open(file_path);
    for (const auto& info : file.tensors()) {
      if (!at::isFloatingType(info.scalar_type)) continue;
      if (stored && *stored != info.scalar_type) return wanted;
      stored = info.scalar_type;
    }
  }
  return stored.value_or(wanted);
}

}  // namespace diffuse::io
