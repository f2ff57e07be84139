// The model `diffuse generate` uses when no --model is given: models/builtin in the source tree,
// trained by `diffuse train` (docs/training.md).
#pragma once
#include <filesystem>

namespace diffuse::cli {

// DIFFUSE_BUILTIN_MODEL (environment) if set, else the folder the build was configured with.
// Throws diffuse::Error explaining how to get the model when the folder has no model_index.json.
// Rebuilds the model's tokenizer on first use (train/shapes_tokenizer.h).
std::filesystem::path builtin_model_dir();

}  // namespace diffuse::cli
