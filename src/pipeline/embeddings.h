#pragma once
// Textual-inversion files onto a loaded model, as --embedding and --embeddings-dir name them.
#include <filesystem>
#include <string>
#include <vector>

#include "pipeline/model.h"

namespace diffuse::pipeline {

struct EmbeddingsAdded {
  std::vector<std::string> names;    // the words prompts can now use
  std::vector<std::string> skipped;  // "<file>: <why>" for folder files this model cannot use
};

// Every file in `files` must load and fit the model (diffuse::InvalidParameter("embedding") naming
// it otherwise). Files in `dirs` and their subfolders (.safetensors, .pt, .bin) that are no embedding
// or were made for another model's encoder are skipped with the reason, as AUTOMATIC1111 skips
// them; a missing folder is an error.
EmbeddingsAdded add_embeddings(StableDiffusionModel& model, const std::vector<std::filesystem::path>& files,
                               const std::vector<std::filesystem::path>& dirs);

}  // namespace diffuse::pipeline
