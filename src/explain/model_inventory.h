// `diffuse inspect`: what a model file holds (every tensor: name, shape, dtype, parameters), how many
// parameters each component has, and the architecture its configs describe.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "models/config.h"

namespace diffuse::explain {

struct TensorEntry {
  std::string name;  // as the file names it
  std::vector<int64_t> shape;
  std::string dtype;  // as the file stores it: "F16", "F32", ...
  int64_t parameters = 0;
};

// A "matrix" here is any tensor with 2 or more dimensions: linear weights [out, in], embedding tables
// [vocab, dim] and convolution kernels [out, in, kh, kw] (a stack of matrices, one per kernel tap).
// What is left are vectors: biases and normalisation scales.
bool is_matrix(const TensorEntry& entry);

struct ComponentInventory {
  std::string key;    // "text_encoder", "text_encoder_2" (SDXL), "unet", "vae"
  std::string label;  // "text encoder", "UNet", "VAE"
  std::string source; // file the tensors are in
  std::vector<TensorEntry> tensors;  // in file order

  int64_t parameters() const;
  int64_t matrices() const;
};

// Every size that shapes the networks, as the loader reads it from the configs (or infers it from a
// single file's tensor shapes).
struct Architecture {
  std::string family;  // "sd1", "sd2" or "sdxl"; a ControlNet: "controlnet"
  // A ControlNet file or folder holds only this (the other configs stay at their defaults, unused).
  std::optional<models::ControlNetConfig> controlnet;
  models::TextEncoderConfig text_encoder;
  std::optional<models::TextEncoderConfig> text_encoder_2;  // SDXL
  models::UNetConfig unet;
  models::VaeConfig vae;
  std::string prediction_type;  // "epsilon" or "v_prediction"
};

struct ModelInventory {
  std::string path;
  std::string layout;  // "diffusers folder" or "single file"
  std::vector<ComponentInventory> components;  // text encoder, UNet, VAE
  std::vector<std::string> not_loaded;  // tensors in the files that are no parameters (buffers, EMA copies)
  Architecture architecture;

  int64_t parameters() const;
  int64_t matrices() const;
  int64_t tensor_count() const;
};

// Reads a diffusers folder or a single .safetensors file, a whole model or a ControlNet. Throws
// diffuse::Error naming the file.
ModelInventory inspect_model(const std::filesystem::path& path);

// The parameters of a built module (e.g. a random-weight full-size network), named as diffusers names
// them, with the module's dtype.
ComponentInventory inventory_of_module(const std::string& key, const torch::nn::Module& module);

nlohmann::json to_json(const ModelInventory& inventory);
// The human-readable report; `list_tensors` false gives only totals and architecture.
std::string to_text(const ModelInventory& inventory, bool list_tensors);

// 1234567 -> "1,234,567".
std::string with_thousands(int64_t value);

}  // namespace diffuse::explain
