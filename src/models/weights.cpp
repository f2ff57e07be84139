#include "models/weights.h"

#include <sstream>

#include "util/error.h"

namespace diffuse::models {

namespace {

std::string shape_text(at::IntArrayRef shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? "," : "") << shape[i];
  out << ']';
  return out.str();
}

// Lists at most a few names so that a wholly wrong file still gives a readable message.
void append_names(std::ostringstream& out, const char* what, const std::vector<std::string>& names) {
  if (names.empty()) return;
  constexpr size_t kShown = 8;
  out << "\n  " << names.size() << ' ' << what << ": ";
  for (size_t i = 0; i < names.size() && i < kShown; ++i) out << (i ? ", " : "") << names[i];
  if (names.size() > kShown) out << ", ...";
}

}  // namespace

void load_weights(torch::nn::Module& module, const TensorMap& weights, const WeightSource& source,
                  const std::function<void(const at::Tensor&)>& after_copy) {
  const auto quoted = [&](const std::string& name) {
    auto it = source.file_names.find(name);
    return "'" + (it != source.file_names.end() ? it->second : name) + "'";
  };
  torch::NoGradGuard no_grad;
  auto targets = module.named_parameters(true);
  std::vector<std::string> missing, mismatched, unexpected;
  std::map<std::string, bool> known;
  for (const auto& item : targets) {
    known[item.key()] = true;
    auto it = weights.find(item.key());
    if (it == weights.end()) {
      missing.push_back("'" + item.key() + "'");  // absent from the file: only our name exists
    } else if (it->second.sizes() != item.value().sizes()) {
      mismatched.push_back(quoted(item.key()) + " has shape " + shape_text(it->second.sizes()) + ", expected " +
                           shape_text(item.value().sizes()));
    }
  }
  for (const auto& [name, tensor] : weights) {
    if (!known.count(name) && !source.optional.count(name)) unexpected.push_back(quoted(name));
  }
  if (!missing.empty() || !mismatched.empty() || !unexpected.empty()) {
    if (mismatched.size() == 1 && missing.empty() && unexpected.empty()) {
      throw Error(source.file + ": tensor " + mismatched.front());
    }
    std::ostringstream message;
    message << source.file << ": weights do not fit the model";
    append_names(message, "missing tensors", missing);
    append_names(message, "wrongly shaped tensors", mismatched);
    append_names(message, "unexpected tensors", unexpected);
    throw Error(message.str());
  }
  for (auto& item : targets) {
    const auto& source_tensor = weights.at(item.key());
    item.value().copy_(source_tensor);
    if (after_copy) after_copy(source_tensor);
  }
}

}  // namespace diffuse::models
