// Full-size models with random weights, written as single-file checkpoints with the original
// (LDM) key names in fp16: the layout and precision real SD checkpoints ship in, so loading them
// times the same path, and the network sizes are exactly the architecture's.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "models/config.h"
#include "models/rrdbnet.h"

namespace diffuse::bench {

struct Architecture {
  std::string name;  // "sd15", "sd21", "sdxl"
  models::UNetConfig unet;
  models::VaeConfig vae;
  models::TextEncoderConfig text_encoder;
  std::optional<models::TextEncoderConfig> text_encoder_2;  // SDXL's OpenCLIP bigG
  bool open_clip = false;  // SD 2.x: the text encoder is OpenCLIP (written with its fused q/k/v)
  int side = 512;          // the image side the model was trained at
};

// Names known to find_architecture, for --help and errors.
std::vector<std::string> architecture_names();
// Throws diffuse::Error naming --arch for an unknown name.
Architecture find_architecture(const std::string& name);

// Writes `architecture` with random weights (torch's default initialisation, seeded) to `path`
// unless that file already exists. Returns the number of parameters written.
// A full-size TAESD (64 channels, 2.4 M parameters) with random fp16 weights, as taesd.py's two
// files in `folder`: taesd_encoder.safetensors and taesd_decoder.safetensors. Returns the parameters.
int64_t write_random_taesd(const std::filesystem::path& folder, uint64_t seed = 0);

// An RRDBNet of `config` with random weights (torch's default initialisation, seeded) in BasicSR's key
// names, fp32, as Real-ESRGAN's converted .safetensors files. Returns the parameters written.
int64_t write_random_upscaler(const models::RrdbNetConfig& config, const std::filesystem::path& path, uint64_t seed = 0);

int64_t write_random_checkpoint(const Architecture& architecture, const std::filesystem::path& path, uint64_t seed = 0);

}  // namespace diffuse::bench
