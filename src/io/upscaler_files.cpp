#include "io/upscaler_files.h"

#include <set>
#include <vector>

#include "io/checkpoint_file.h"
#include "io/safetensors.h"
#include "util/error.h"
#include "util/strings.h"

namespace diffuse::io {

namespace fs = std::filesystem;

namespace {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Layer prefixes (without .weight / .bias) of both layouts, ESRGAN's first.
std::vector<std::pair<std::string, std::string>> layer_table(int upsamplings, int num_block) {
  std::vector<std::pair<std::string, std::string>> table;
  table.emplace_back("model.0", "conv_first");
  for (int b = 0; b < num_block; ++b) {
    for (int k = 1; k <= 3; ++k) {
      for (int j = 1; j <= 5; ++j) {
        const auto block = std::to_string(b), rdb = std::to_string(k), conv = std::to_string(j);
        table.emplace_back("model.1.sub." + block + ".RDB" + rdb + ".conv" + conv + ".0",
                           "body." + block + ".rdb" + rdb + ".conv" + conv);
      }
    }
  }
  table.emplace_back("model.1.sub." + std::to_string(num_block), "conv_body");
  for (int i = 1; i <= upsamplings; ++i) table.emplace_back("model." + std::to_string(3 * i), "conv_up" + std::to_string(i));
  table.emplace_back("model." + std::to_string(3 * upsamplings + 2), "conv_hr");
  table.emplace_back("model." + std::to_string(3 * upsamplings + 4), "conv_last");
  return table;
}

std::optional<std::string> translate_upscaler_name(const std::string& name, int upsamplings, int num_block, bool from_esrgan) {
  for (const char* suffix : {".weight", ".bias"}) {
    if (!ends_with(name, suffix)) continue;
    const auto layer = name.substr(0, name.size() - std::char_traits<char>::length(suffix));
    for (const auto& [esrgan, basicsr] : layer_table(upsamplings, num_block)) {
      if (layer == (from_esrgan ? esrgan : basicsr)) return (from_esrgan ? basicsr : esrgan) + suffix;
    }
  }
  return std::nullopt;
}

// "12" -> 12; nullopt for anything but a short run of digits.
std::optional<int> small_number(const std::string& text) {
  if (text.empty() || text.size() > 6 || text.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return std::stoi(text);
}

// The tensors of a .pth: Real-ESRGAN's {'params_ema': ...} (else 'params'), or the state dict itself.
NamedTensors checkpoint_tensors(const fs::path& path) {
  const auto file = CheckpointFile::open(path);
  const auto& document = file.document();
  for (const char* key : {"params_ema", "params"}) {
    if (const auto dict = document.get(file.root(), key)) return file.tensors_in(*dict);
  }
  NamedTensors tensors;
  for (const auto& info : file.tensors()) tensors.emplace_back(info.name, file.tensor(info.name));
  return tensors;
}

NamedTensors file_tensors(const fs::path& path) {
  if (is_checkpoint_path(path)) return checkpoint_tensors(path);
  const auto file = SafetensorsFile::open(path);
  NamedTensors tensors;
  for (const auto& info : file.tensors()) tensors.emplace_back(info.name, file.tensor(info.name));
  return tensors;
}

// ESRGAN's top-level indices must read 0, 3, 6, .., 3n, 3n+2, 3n+4: returns n.
int esrgan_upsamplings(const NamedTensors& tensors, const std::string& source) {
  std::set<int> indices;
  for (const auto& [name, tensor] : tensors) {
    if (!starts_with(name, "model.") || !ends_with(name, ".weight")) continue;
    if (const auto index = small_number(name.substr(6, name.size() - 6 - 7))) indices.insert(*index);
  }
  const int n = static_cast<int>(indices.size()) - 3;
  std::set<int> expected = {0};
  for (int i = 1; i <= n; ++i) expected.insert(3 * i);
  expected.insert({3 * n + 2, 3 * n + 4});
  if (n < 1 || indices != expected) {
    std::string found;
    for (int index : indices) found += (found.empty() ? "" : ", ") + std::to_string(index);
    throw Error(source + ": ESRGAN layout with top-level layers model.{" + found +
                "}, expected 0, 3, .., 3n (one per x2 upsampling), 3n+2, 3n+4");
  }
  return n;
}

// Distinct b of model.1.sub.<b>.RDB1.*.
int esrgan_blocks(const NamedTensors& tensors) {
  std::set<int> blocks;
  const std::string prefix = "model.1.sub.";
  for (const auto& [name, tensor] : tensors) {
    if (!starts_with(name, prefix)) continue;
    const auto dot = name.find('.', prefix.size());
    if (dot == std::string::npos || name.compare(dot, 6, ".RDB1.") != 0) continue;
    if (const auto b = small_number(name.substr(prefix.size(), dot - prefix.size()))) blocks.insert(*b);
  }
  return static_cast<int>(blocks.size());
}

}  // namespace

const char* upscaler_layout_name(UpscalerLayout layout) {
  return layout == UpscalerLayout::BasicSR ? "BasicSR" : "ESRGAN";
}

std::optional<std::string> basicsr_name_of_esrgan(const std::string& esrgan_name, int upsamplings, int num_block) {
  return translate_upscaler_name(esrgan_name, upsamplings, num_block, true);
}

std::optional<std::string> esrgan_name_of_basicsr(const std::string& basicsr_name, int upsamplings, int num_block) {
  return translate_upscaler_name(basicsr_name, upsamplings, num_block, false);
}

UpscalerFile load_upscaler_file(const fs::path& path, at::ScalarType dtype) {
  std::error_code error;
  if (!fs::is_regular_file(path, error)) throw Error(path.string() + ": no such file");
  UpscalerFile file;
  file.source = path.string();
  auto tensors = file_tensors(path);
  for (auto& [name, tensor] : tensors) {
    if (starts_with(name, "module.")) name = name.substr(7);
  }
  bool basicsr = false, esrgan = false;
  for (const auto& [name, tensor] : tensors) {
    basicsr = basicsr || name == "conv_first.weight";
    esrgan = esrgan || name == "model.0.weight";
  }
  if (basicsr == esrgan) {
    const std::string first = tensors.empty() ? "it holds no tensors" : "its first tensor is '" + tensors.front().first + "'";
    throw Error(file.source + ": not an ESRGAN-family upscaler: " +
                (basicsr ? std::string("it has both 'conv_first.weight' and 'model.0.weight'")
                         : "no 'conv_first.weight' (BasicSR / Real-ESRGAN) or 'model.0.weight' (ESRGAN) tensor; " + first));
  }
  file.layout = basicsr ? UpscalerLayout::BasicSR : UpscalerLayout::Esrgan;
  const int upsamplings = esrgan ? esrgan_upsamplings(tensors, file.source) : 0;
  const int blocks = esrgan ? esrgan_blocks(tensors) : 0;
  std::map<std::string, std::string> to_basicsr;
  if (esrgan) {
    for (const auto& [esrgan_layer, basicsr_layer] : layer_table(upsamplings, blocks)) {
      for (const char* suffix : {".weight", ".bias"}) to_basicsr[esrgan_layer + suffix] = basicsr_layer + suffix;
    }
  }
  for (auto& [name, tensor] : tensors) {
    if (!at::isFloatingType(tensor.scalar_type())) {
      throw Error(file.source + ": tensor '" + name + "' holds " + std::string(c10::toString(tensor.scalar_type())) +
                  ", not floating-point weights");
    }
    std::string basicsr_name = name;
    if (esrgan) {
      const auto renamed = to_basicsr.find(name);
      if (renamed == to_basicsr.end()) {
        throw Error(file.source + ": tensor '" + name + "' is not part of an ESRGAN RRDBNet with " + std::to_string(blocks) +
                    " blocks and " + std::to_string(upsamplings) + " upsamplings");
      }
      basicsr_name = renamed->second;
      file.file_names[basicsr_name] = name;
    }
    if (!file.tensors.emplace(basicsr_name, tensor.to(dtype)).second) {
      throw Error(file.source + ": tensor '" + name + "' appears twice");
    }
  }
  return file;
}

}  // namespace diffuse::io
