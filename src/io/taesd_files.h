#pragma once
// TAESD weights in either file layout, named as diffusers' AutoencoderTiny names them:
// - a diffusers folder (config.json + diffusion_pytorch_model.safetensors / .bin);
// - madebyollin/taesd's taesd_decoder.safetensors (or .pth), with taesd_encoder beside it when there
//   is one, or a folder holding them: nn.Sequential names `<i>.*`, the decoder's index 0 being its
//   clamp, so decoder.layers.<i> = file index i + 1;
// - one file with diffusers names.
#include <filesystem>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "util/tensor_map.h"

namespace diffuse::io {

struct TaesdFiles {
  nlohmann::json config;  // the folder's config.json; null for the original files (infer from shapes)
  TensorMap tensors;      // diffusers names: encoder.layers.<i>.*, decoder.layers.<i>.*
  std::string source;     // for error messages: the file(s) read
  std::map<std::string, std::string> file_names;  // diffusers name -> the name in its file, where they differ
};

// Floating-point tensors as `dtype`. Throws diffuse::Error naming the path when it is none of the
// forms above or a file holds no TAESD layers.
TaesdFiles load_taesd_files(const std::filesystem::path& path, at::ScalarType dtype);

}  // namespace diffuse::io
