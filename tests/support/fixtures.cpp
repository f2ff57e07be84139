#include "support/fixtures.h"

#include <cstdlib>
#include <fstream>
#include <stdexcept>

#include "util/json.h"

namespace diffuse::test {

namespace fs = std::filesystem;

fs::path shared_dir() {
  const char* env = std::getenv("DIFFUSE_SHARED_DIR");
  return fs::path(env != nullptr ? env : DIFFUSE_DEFAULT_SHARED_DIR);
}

fs::path fixtures_dir() { return shared_dir() / "fixtures"; }

nlohmann::json read_json(const fs::path& path) { return read_json_file(path); }

at::Tensor read_reference(const fs::path& bin_path) {
  fs::path meta_path = bin_path;
  meta_path.replace_extension(".json");
  const auto meta = read_json(meta_path);
  std::vector<int64_t> shape = meta.at("shape").get<std::vector<int64_t>>();
  auto tensor = at::empty(shape, at::kFloat);
  std::ifstream in(bin_path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + bin_path.string());
  const auto bytes = static_cast<std::streamsize>(tensor.numel() * sizeof(float));
  in.read(reinterpret_cast<char*>(tensor.data_ptr<float>()), bytes);
  if (in.gcount() != bytes) throw std::runtime_error("short read: " + bin_path.string());
  return tensor;
}

double relative_max_error(const at::Tensor& actual, const at::Tensor& expected) {
  if (actual.sizes() != expected.sizes()) {
    throw std::runtime_error("shape mismatch in comparison");
  }
  const auto a = actual.to(at::kDouble);
  const auto e = expected.to(at::kDouble);
  const double scale = e.abs().max().item<double>();
  return (a - e).abs().max().item<double>() / (scale > 0 ? scale : 1.0);
}

fs::path diffuse_binary() {
  const char* env = std::getenv("DIFFUSE_BINARY");
  return fs::path(env != nullptr ? env : DIFFUSE_DEFAULT_BINARY);
}

std::set<std::string> tensor_names(const std::map<std::string, at::Tensor>& tensors) {
  std::set<std::string> result;
  for (const auto& [name, tensor] : tensors) result.insert(name);
  return result;
}

}  // namespace diffuse::test
