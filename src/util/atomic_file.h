#pragma once
// Files are written whole or not at all: a crash, a full disk or a bad value part-way never leaves a
// half-written image, model or log where a complete one is expected (or where an old one was).
#include <filesystem>
#include <functional>

namespace diffuse {

// Calls `write` with a temporary path beside `path`, then renames it over `path`. If `write` throws,
// or the rename fails, the temporary file is removed and the error (a diffuse::Error naming `path`
// for the rename) propagates; `path` is untouched.
void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(const std::filesystem::path& temporary)>& write);

}  // namespace diffuse
