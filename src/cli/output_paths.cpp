#include "cli/output_paths.h"

#include <string>

namespace diffuse::cli {

namespace fs = std::filesystem;

fs::path image_path(const fs::path& output, int batch_count, uint64_t seed) {
  if (batch_count == 1) return output;
  auto path = output;
  path.replace_filename(output.stem().string() + "-" + std::to_string(seed) + output.extension().string());
  return path;
}

fs::path steps_folder(const fs::path& folder, int batch_count, uint64_t seed) {
  return batch_count == 1 ? folder : folder / ("seed-" + std::to_string(seed));
}

}  // namespace diffuse::cli
