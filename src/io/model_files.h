// A whole Stable Diffusion model read from disk into per-component tensor maps, named as diffusers
// names them whatever the file layout. Modules (models/) are built from these maps.
#pragma once
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "io/original_config.h"

namespace diffuse::io {

using TensorMap = std::map<std::string, at::Tensor>;

struct ComponentWeights {
  nlohmann::json config;  // the component's config.json; null for a single file (infer from shapes)
  TensorMap tensors;      // diffusers names
  std::string source;     // file the tensors came from, for error messages
  // Diffusers name -> the name in the file, where they differ (single files), for error messages.
  std::map<std::string, std::string> file_names;
};

struct ModelFiles {
  enum class Layout { Diffusers, SingleFile };
  Layout layout = Layout::Diffusers;
  std::filesystem::path path;
  ComponentWeights unet, vae, text_encoder;
  // SDXL's second text encoder (OpenCLIP bigG with a text projection); no tensors for SD 1.x/2.x.
  ComponentWeights text_encoder_2;
  // scheduler/scheduler_config.json; null where there is none (single files, some folders): such a
  // model samples on the released SD configs' schedule with what `original` says of it, as
  // diffusers' from_single_file does.
  nlohmann::json scheduler_config;
  // Single file: what <stem>.json or ldm_config.json beside it says, and its family's released
  // config where that says nothing (SD 2.x: OpenCLIP's GELU; SDXL: VAE scale 0.13025). Folders:
  // empty (their configs say everything).
  OriginalConfig original;
  // Diffusers: the tokenizer/ folder. Single file: a tokenizer/ folder beside it, else the folder
  // holding vocab.json + merges.txt beside it, else bpe_simple_vocab_16e6.txt.gz beside it.
  std::optional<std::filesystem::path> tokenizer;
  // Single file: the token its family's tokenizer pads with (OpenCLIP, SD 2.x: "!"; CLIP, SD 1.x:
  // "<|endoftext|>"), which no tokenizer config beside the file says. Folders: their config says it.
  std::optional<std::string> pad_token;
  // SDXL: the second text encoder's tokenizer (diffusers: tokenizer_2/), and its pad token where the
  // layout does not say it; and whether an empty negative prompt means zero conditioning
  // (model_index.json's force_zeros_for_empty_prompt; SDXL base says true).
  std::optional<std::filesystem::path> tokenizer_2;
  std::optional<std::string> pad_token_2;
  bool force_zeros_for_empty_prompt = false;
  LdmFamily family = LdmFamily::Sd1;  // by its text encoders: CLIP ViT-L, OpenCLIP, or both (SDXL)
  // Tensors in the files deliberately not loaded: buffers (position_ids), EMA copies, noise
  // schedules, VAE training losses, SD 2.x's unused last text layer.
  std::vector<std::string> ignored;
};

// `path`: a diffusers folder (with model_index.json) or a single .safetensors checkpoint.
// Floating-point tensors come as `dtype` (views of the memory-mapped file when it already holds
// that type); integer tensors keep theirs. Throws diffuse::Error naming the path, file or tensor.
ModelFiles load_model_files(const std::filesystem::path& path, at::ScalarType dtype = at::kFloat);

// One diffusers component folder on its own (config.json and its weights, as each of a model's is read).
ComponentWeights load_component_folder(const std::filesystem::path& folder, at::ScalarType dtype);

// The type to ask load_model_files() for, to get `wanted` with the fewest conversions: a single file
// or a folder whose weight files store all their floating-point tensors in one type is read as
// stored, so every tensor is a view of the memory-mapped file, converted once by the copy into its
// module (each module in its own type: fp32 text encoders, bf16 UNet). Otherwise `wanted`.
at::ScalarType loading_dtype(const std::filesystem::path& path, at::ScalarType wanted);

}  // namespace diffuse::io
