#include "io/taesd_files.h"

#include "io/model_files.h"
#include "io/tensor_file.h"
#include "util/error.h"
#include "util/json.h"
#include "util/strings.h"

namespace diffuse::io {

namespace fs = std::filesystem;

namespace {

// `<index>.<rest>` -> index and rest; nothing for other names.
std::optional<std::pair<int, std::string>> sequential_name(const std::string& name) {
  const auto dot = name.find('.');
  if (dot == 0 || dot == std::string::npos || dot > 3 || name.find_first_not_of("0123456789") != dot) return std::nullopt;
  return std::pair{std::stoi(name.substr(0, dot)), name.substr(dot)};
}

// One file's tensors into `files`: diffusers names as they are, or one half in taesd.py's names.
void add_file(const fs::path& path, at::ScalarType dtype, TaesdFiles& files) {
  const auto file = TensorFile::open(path);
  bool diffusers_names = false, sequential = false, decoder = true;
  for (const auto& info : file.tensors()) {
    if (starts_with(info.name, "encoder.layers.") || starts_with(info.name, "decoder.layers.")) {
      diffusers_names = true;
    } else if (sequential_name(info.name)) {
      sequential = true;
      if (info.name == "0.weight") decoder = false;  // the decoder's index 0 is its clamp: no tensors
    } else {
      throw Error(path.string() + ": tensor '" + info.name +
                  "' is not a TAESD layer (expected taesd.py's <index>.* or diffusers' encoder.layers.<index>.*)");
    }
  }
  if (diffusers_names == sequential) {
    throw Error(path.string() + (sequential ? ": mixes taesd.py and diffusers tensor names" : ": holds no tensors"));
  }
  const std::string prefix = diffusers_names ? "" : decoder ? "decoder.layers." : "encoder.layers.";
  if (!diffusers_names) {
    for (const auto& [name, tensor] : files.tensors) {
      if (starts_with(name, prefix)) throw Error(path.string() + ": a second TAESD " + (decoder ? "decoder" : "encoder"));
    }
  }
  for (const auto& info : file.tensors()) {
    std::string name = info.name;
    if (!diffusers_names) {
      const auto [index, rest] = *sequential_name(info.name);
      name = prefix + std::to_string(decoder ? index - 1 : index) + rest;
      files.file_names[name] = path.filename().string() + ": " + info.name;
    }
    const bool floating = at::isFloatingType(info.scalar_type);
    if (!files.tensors.emplace(name, file.tensor(info.name, floating ? std::optional(dtype) : std::nullopt)).second) {
      throw Error(path.string() + ": tensor '" + name + "' appears twice");
    }
  }
  files.source += (files.source.empty() ? "" : " + ") + path.string();
}

// taesd_decoder.<ext> -> taesd_encoder.<ext> (taesdxl_decoder.pth -> taesdxl_encoder.pth).
std::optional<fs::path> encoder_beside(const fs::path& decoder) {
  auto name = decoder.filename().string();
  const auto at = name.rfind("decoder");
  if (at == std::string::npos) return std::nullopt;
  name.replace(at, 7, "encoder");
  const auto encoder = decoder.parent_path() / name;
  return fs::is_regular_file(encoder) ? std::optional(encoder) : std::nullopt;
}

}  // namespace

TaesdFiles load_taesd_files(const fs::path& path, at::ScalarType dtype) {
  std::error_code error;
  TaesdFiles files;
  if (fs::is_directory(path, error)) {
    if (fs::is_regular_file(path / "config.json")) {
      auto component = load_component_folder(path, dtype);
      files.config = std::move(component.config);
      files.tensors = std::move(component.tensors);
      files.source = component.source;
      return files;
    }
    for (const char* ext : {".safetensors", ".pth"}) {
      const auto decoder = path / (std::string("taesd_decoder") + ext);
      if (fs::is_regular_file(decoder)) return load_taesd_files(decoder, dtype);
    }
    throw Error(path.string() + ": not a TAESD folder (no config.json of an AutoencoderTiny, no taesd_decoder.safetensors)");
  }
  if (!fs::is_regular_file(path, error)) throw Error(path.string() + ": no such file or folder");
  add_file(path, dtype, files);
  const bool only_encoder = files.tensors.count("encoder.layers.0.weight") && !files.tensors.count("decoder.layers.0.weight");
  if (only_encoder) {
    throw Error(path.string() + ": a TAESD encoder alone; give the decoder (taesd_decoder.safetensors), which finds the "
                                "encoder beside it");
  }
  if (!files.tensors.count("encoder.layers.0.weight")) {
    if (const auto encoder = encoder_beside(path)) add_file(*encoder, dtype, files);
  }
  return files;
}

}  // namespace diffuse::io
