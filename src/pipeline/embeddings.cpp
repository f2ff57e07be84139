#include "pipeline/embeddings.h"

#include <algorithm>

#include "io/embedding_file.h"
#include "util/error.h"

namespace diffuse::pipeline {

namespace fs = std::filesystem;

namespace {

std::string add_file(StableDiffusionModel& model, const fs::path& path) {
  auto file = io::read_embedding_file(path);
  try {
    model.add_embedding({file.name, file.vectors, file.vectors_2});
  } catch (const InvalidParameter& error) {
    throw InvalidParameter("embedding", path.string() + ": " + error.problem());
  }
  return file.name;
}

}  // namespace

EmbeddingsAdded add_embeddings(StableDiffusionModel& model, const std::vector<fs::path>& files,
                               const std::vector<fs::path>& dirs) {
  EmbeddingsAdded added;
  for (const auto& dir : dirs) {
    std::error_code error;
    if (!fs::is_directory(dir, error)) {
      throw InvalidParameter("embeddings_dir", "'" + dir.string() + "' is not a folder");
    }
    std::vector<fs::path> found;
    for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, error), end;
         !error && it != end; it.increment(error)) {
      if (it->is_regular_file(error) && io::is_embedding_file(it->path())) found.push_back(it->path());
    }
    std::sort(found.begin(), found.end());  // the same words win on every machine
    for (const auto& path : found) {
      try {
        added.names.push_back(add_file(model, path));
      } catch (const InvalidParameter& e) {
        added.skipped.push_back(e.problem());
      } catch (const Error& e) {
        added.skipped.push_back(e.what());
      }
    }
  }
  for (const auto& path : files) {
    try {
      added.names.push_back(add_file(model, path));
    } catch (const InvalidParameter&) {
      throw;
    } catch (const Error& e) {
      throw InvalidParameter("embedding", e.what());
    }
  }
  return added;
}

}  // namespace diffuse::pipeline
