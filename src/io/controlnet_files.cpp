#include "io/controlnet_files.h"

#include <set>

#include "io/ldm_names.h"
#include "io/tensor_file.h"
#include "util/error.h"
#include "util/json.h"

namespace diffuse::io {

namespace fs = std::filesystem;

namespace {

at::Tensor read_controlnet_tensor(const TensorFile& file, const std::string& name, at::ScalarType dtype) {
  const bool floating = at::isFloatingType(file.info(name).scalar_type);
  return file.tensor(name, floating ? std::optional<at::ScalarType>(dtype) : std::nullopt);
}

// A single file already in diffusers' names (as diffusers' save_pretrained writes the weights).
bool has_diffusers_names(const TensorFile& file) { return file.contains("controlnet_cond_embedding.conv_in.weight"); }

}  // namespace

ComponentWeights load_controlnet_files(const fs::path& path, at::ScalarType dtype) {
  if (fs::is_directory(path)) return load_component_folder(path, dtype);
  if (!fs::is_regular_file(path)) throw Error(path.string() + ": no such ControlNet file or folder");
  const auto file = TensorFile::open(path);
  ComponentWeights weights;
  weights.source = path.string();
  if (has_diffusers_names(file)) {
    for (const auto& info : file.tensors()) weights.tensors[info.name] = read_controlnet_tensor(file, info.name, dtype);
    return weights;
  }
  std::vector<std::string> keys;
  for (const auto& info : file.tensors()) keys.push_back(info.name);
  const auto table = ldm_controlnet_name_table(structure_of_original_controlnet(keys, weights.source));
  for (const auto& key : keys) {
    const auto matches = table.to_diffusers(key);
    if (matches.empty()) {
      // Outside the net's section (a whole ControlLDM checkpoint's SD weights) is not ours.
      if (table.section_of(key) == nullptr) continue;
      throw Error(weights.source + ": tensor '" + key + "' is not a known ControlNet tensor");
    }
    const auto& match = matches.front();
    if (match.pair->skipped || match.name.empty()) continue;
    if (weights.tensors.count(match.name)) {
      throw Error(weights.source + ": two tensors map to controlnet '" + match.name + "' (second: '" + key + "')");
    }
    weights.tensors[match.name] = read_controlnet_tensor(file, key, dtype);
    weights.file_names[match.name] = key;
  }
  return weights;
}

bool is_controlnet_path(const fs::path& path) {
  std::error_code error;
  if (fs::is_directory(path, error)) {
    const auto config = path / "config.json";
    if (!fs::is_regular_file(config, error)) return false;
    const auto json = read_json_file(config);
    return json.is_object() && json.value("_class_name", std::string()) == "ControlNetModel";
  }
  if (!fs::is_regular_file(path, error)) return false;
  const auto file = TensorFile::open(path);
  if (has_diffusers_names(file)) return true;
  for (const auto& info : file.tensors()) {
    if (info.name.rfind("input_hint_block.", 0) == 0 || info.name.rfind(kControlNetPrefix + "input_hint_block.", 0) == 0) {
      return true;
    }
  }
  return false;
}

TensorMap export_controlnet_checkpoint(const TensorMap& controlnet) {
  const auto table = ldm_controlnet_name_table(structure_of_diffusers_controlnet(controlnet));
  TensorMap out;
  for (const auto& [name, tensor] : controlnet) {
    const auto match = table.to_original(Component::ControlNet, name);
    if (!match || match->name.empty()) throw Error("controlnet: tensor '" + name + "' has no place in lllyasviel's layout");
    out[match->name] = tensor;
  }
  return out;
}

}  // namespace diffuse::io
