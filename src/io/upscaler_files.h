#pragma once
// ESRGAN-family upscaler weights (models/rrdbnet.h) in either key layout, named as BasicSR names them:
// - BasicSR / Real-ESRGAN: conv_first, body.<b>.rdb<k>.conv<j>, conv_body, conv_up1, conv_up2,
//   conv_hr, conv_last; Real-ESRGAN's .pth releases hold them under 'params_ema' (or 'params');
// - the original ESRGAN layout (4x-UltraSharp and most community models): model.0,
//   model.1.sub.<b>.RDB<k>.conv<j>.0, model.1.sub.<num_block>, then per x2 upsampling model.3,
//   model.6, ..., model.<3n>, the HR conv at model.<3n+2> and the last at model.<3n+4>.
// From .safetensors or .pth (.pt, .ckpt: through the restricted checkpoint reader, never pickled code);
// a leading 'module.' (DataParallel) is dropped.
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "util/tensor_map.h"

namespace diffuse::io {

enum class UpscalerLayout { BasicSR, Esrgan };
const char* upscaler_layout_name(UpscalerLayout layout);  // "BasicSR", "ESRGAN"

struct UpscalerFile {
  TensorMap tensors;    // BasicSR names
  UpscalerLayout layout = UpscalerLayout::BasicSR;
  std::string source;   // the path, for error messages
  std::map<std::string, std::string> file_names;  // BasicSR name -> the name in the file, where they differ
};

// Floating-point tensors as `dtype`. Throws diffuse::Error naming the file for one that cannot be
// read, that is no ESRGAN-family upscaler (an SD checkpoint, say), or whose ESRGAN-layout tensor names
// do not fit the layout (naming the tensor).
UpscalerFile load_upscaler_file(const std::filesystem::path& path, at::ScalarType dtype);

// The one table between the two layouts, for a net with `upsamplings` x2 steps and `num_block`
// RRDBs; used both ways. nullopt for a name the other layout has no counterpart of.
std::optional<std::string> basicsr_name_of_esrgan(const std::string& esrgan_name, int upsamplings, int num_block);
std::optional<std::string> esrgan_name_of_basicsr(const std::string& basicsr_name, int upsamplings, int num_block);

}  // namespace diffuse::io
