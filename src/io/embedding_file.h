#pragma once
// Textual-inversion embeddings as people share them: AUTOMATIC1111's `.pt` (string_to_param) and
// `.safetensors` (emb_params), diffusers' concept files ({token: vector}), and SDXL's pairs (clip_l
// and clip_g). Every layout reads through AUTOMATIC1111's rules (modules/textual_inversion).
#include <filesystem>
#include <string>

#include <ATen/ATen.h>

#include "util/tensor_map.h"

namespace diffuse::io {

struct EmbeddingFile {
  std::filesystem::path path;
  std::string name;       // the file's stem: the word prompts use, as AUTOMATIC1111 names it
  at::Tensor vectors;     // [n, hidden] float32 for the (first) text encoder (SDXL: clip_l)
  at::Tensor vectors_2;   // SDXL files: [n, hidden_2] for the second (clip_g); else undefined
};

// Reads a .safetensors, .pt or .bin embedding. Throws diffuse::Error naming the file and what in it
// is not an embedding. `.pt` / `.bin` go through the restricted checkpoint reader: nothing in the
// file is executed.
EmbeddingFile read_embedding_file(const std::filesystem::path& path);

// An embedding from a file's tensors by AUTOMATIC1111's rules: clip_l + clip_g, or a single tensor
// ([n, hidden] or one [hidden] vector). `where` starts every error message.
EmbeddingFile embedding_from_tensors(const TensorMap& tensors, const std::string& where);

// The files read_embedding_file takes, by their extension.
bool is_embedding_file(const std::filesystem::path& path);

}  // namespace diffuse::io
