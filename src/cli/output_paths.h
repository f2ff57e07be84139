#pragma once
// Where `diffuse generate` writes: the command line names one output, a batch gets one per seed.
#include <cstdint>
#include <filesystem>

namespace diffuse::cli {

// Where image `seed` of a request goes: `output` for a single image, `<stem>-<seed><ext>` for each
// image of a batch.
std::filesystem::path image_path(const std::filesystem::path& output, int batch_count, uint64_t seed);
// Per-step pictures of one image: `folder` for a single image, `folder/seed-<seed>` in a batch.
std::filesystem::path steps_folder(const std::filesystem::path& folder, int batch_count, uint64_t seed);

}  // namespace diffuse::cli
