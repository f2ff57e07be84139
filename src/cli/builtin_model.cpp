#include "cli/builtin_model.h"

#include <cstdlib>

#include "train/shapes_tokenizer.h"
#include "util/error.h"

namespace diffuse::cli {

std::filesystem::path builtin_model_dir() {
  const char* override_dir = std::getenv("DIFFUSE_BUILTIN_MODEL");
  const std::filesystem::path dir = override_dir != nullptr && *override_dir ? override_dir : DIFFUSE_BUILTIN_MODEL_DIR;
  if (!std::filesystem::is_regular_file(dir / "model_index.json")) {
    throw Error("--model: not given, and the built-in model is missing at '" + dir.string() +
                "'; pass -m MODEL, or train the built-in model with the command in docs/training.md");
  }
  if (!std::filesystem::is_regular_file(dir / "tokenizer" / "vocab.json")) train::restore_shapes_tokenizer(dir);
  return dir;
}

}  // namespace diffuse::cli
