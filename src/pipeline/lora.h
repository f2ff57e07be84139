#pragma once
// LoRAs on a loaded model: each one's low-rank updates run beside the layers they change
// (models::LowRankUpdate), so putting them on and taking them off between generations touches no
// weight and reloads nothing.
#include <filesystem>
#include <string>
#include <vector>

namespace diffuse::pipeline {

// A LoRA file and how strongly it applies: AUTOMATIC1111's `<lora:name:te:unet>` (one number sets
// both).
struct LoraUse {
  std::filesystem::path file;
  double text_encoder_weight = 1;
  double unet_weight = 1;

  bool operator==(const LoraUse& other) const {
    return file == other.file && text_encoder_weight == other.text_encoder_weight && unet_weight == other.unet_weight;
  }
};

// `name` as a prompt's `<lora:name:...>` or --lora gives it: an existing file as it is; otherwise
// `<name>.safetensors` found in `dirs` (and their subfolders, as AUTOMATIC1111 searches). Throws
// diffuse::InvalidParameter("lora") naming what was looked for and where.
std::filesystem::path find_lora_file(const std::string& name, const std::vector<std::filesystem::path>& dirs);

}  // namespace diffuse::pipeline
