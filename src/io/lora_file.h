// LoRA files: the low-rank updates of a network's layers, in the two layouts people share.
// - kohya / AUTOMATIC1111: `lora_unet_<module>.lora_down.weight`, `.lora_up.weight` and an optional
//   `.alpha`, the module named with '_' for '.' (diffusers names for SD 1.x/2.x UNets, the original
//   `input_blocks_4_1_...` names for SDXL); text encoders `lora_te_` (SDXL: `lora_te1_`, `lora_te2_`).
// - diffusers / PEFT: `unet.<module>.lora.down.weight` / `.lora.up.weight`,
//   `text_encoder.<module>.lora_linear_layer.down.weight`, PEFT's `<module>.lora_A.weight` /
//   `.lora_B.weight`, and the older attention-processor names (`attn1.processor.to_q_lora.down`).
// Only the file is read here; pipeline/lora.cpp finds each module in a model.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace diffuse::io {

enum class LoraTarget { Unet, TextEncoder, TextEncoder2 };

struct LoraModule {
  std::string file_name;  // the module's name as the file spells it, for messages
  LoraTarget target = LoraTarget::Unet;
  // Inside the target: a dotted module path (diffusers, PEFT) or kohya's underscored one.
  std::string module;
  bool underscored = false;
  at::Tensor down, up;         // float32, as stored: [rank, in(, kh, kw)] and [out, rank(, 1, 1)]
  std::optional<double> alpha;  // kohya's; absent: alpha = rank

  int64_t rank() const { return down.size(0); }
  // What the update is multiplied by before the user's weight: alpha / rank, or 1 without alpha.
  double multiplier() const { return alpha ? *alpha / static_cast<double>(rank()) : 1.0; }
};

struct LoraFile {
  std::filesystem::path path;
  std::string name;  // the file's stem: what `<lora:name:weight>` calls it
  std::vector<LoraModule> modules;
};

// Reads a .safetensors LoRA. Throws diffuse::Error naming the file and the tensor for anything it
// cannot use: a down without its up, shapes that do not chain, an unknown tensor name, or a
// LyCORIS kind (LoHa, LoKr, ...) this reader does not implement.
LoraFile read_lora_file(const std::filesystem::path& path);

}  // namespace diffuse::io
