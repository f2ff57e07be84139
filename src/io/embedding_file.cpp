#include "io/embedding_file.h"

#include "io/checkpoint_file.h"
#include "io/safetensors.h"
#include "util/error.h"

namespace diffuse::io {

namespace fs = std::filesystem;

namespace {

at::Tensor vectors_of(const at::Tensor& tensor, const std::string& where, const std::string& name) {
  if (tensor.dim() == 1) return tensor.to(at::kFloat).unsqueeze(0);  // a diffusers concept: one vector
  if (tensor.dim() != 2 || tensor.size(0) < 1) {
    throw Error(where + "'" + name + "' " + c10::str(tensor.sizes()) + " is not a list of vectors ([n, width])");
  }
  if (!at::isfinite(tensor).all().item<bool>()) throw Error(where + "'" + name + "' holds a NaN or an infinity");
  return tensor.to(at::kFloat).contiguous();
}

}  // namespace

EmbeddingFile embedding_from_tensors(const TensorMap& tensors, const std::string& where) {
  EmbeddingFile embedding;
  if (tensors.count("clip_l") && tensors.count("clip_g")) {
    embedding.vectors = vectors_of(tensors.at("clip_l"), where, "clip_l");
    embedding.vectors_2 = vectors_of(tensors.at("clip_g"), where, "clip_g");
    if (embedding.vectors.size(0) != embedding.vectors_2.size(0)) {
      throw Error(where + "clip_l has " + std::to_string(embedding.vectors.size(0)) + " vectors but clip_g " +
                  std::to_string(embedding.vectors_2.size(0)));
    }
    return embedding;
  }
  if (tensors.size() != 1) {
    std::string names;
    for (const auto& [name, tensor] : tensors) names += (names.empty() ? "" : ", ") + name;
    throw Error(where + "is not a textual-inversion embedding: it should hold one tensor (emb_params) or clip_l and "
                        "clip_g, not " + std::to_string(tensors.size()) + (names.empty() ? "" : " (" + names + ")"));
  }
  embedding.vectors = vectors_of(tensors.begin()->second, where, tensors.begin()->first);
  return embedding;
}

bool is_embedding_file(const fs::path& path) {
  const auto extension = path.extension();
  return extension == ".safetensors" || extension == ".pt" || extension == ".bin";
}

EmbeddingFile read_embedding_file(const fs::path& path) {
  const auto where = path.string() + ": ";
  EmbeddingFile embedding;
  if (path.extension() == ".safetensors") {
    const auto file = SafetensorsFile::open(path);
    TensorMap tensors;
    for (const auto& info : file.tensors()) tensors.emplace(info.name, file.tensor(info.name));
    embedding = embedding_from_tensors(tensors, where);
  } else if (path.extension() == ".pt" || path.extension() == ".bin") {
    const auto file = CheckpointFile::open(path);
    const auto& doc = file.document();
    // AUTOMATIC1111's own files keep the vectors in string_to_param (under '*'); others are a dict of
    // tensors (emb_params, a diffusers concept {token: vector}, clip_l + clip_g).
    pickle::Ref dict = file.root();
    if (const auto params = doc.get(file.root(), "string_to_param")) {
      if (doc.at(*params).kind != pickle::Kind::Dict) throw Error(where + "string_to_param is " + doc.describe(*params) + ", not a dict");
      dict = *params;
    }
    TensorMap tensors;
    for (auto& [name, tensor] : file.tensors_in(dict)) tensors[name] = std::move(tensor);
    if (tensors.empty() && doc.at(dict).kind != pickle::Kind::Dict) {
      throw Error(where + "holds " + doc.describe(dict) + ", not a textual-inversion embedding");
    }
    embedding = embedding_from_tensors(tensors, where);
  } else {
    throw Error(where + "an embedding is a .safetensors, .pt or .bin file");
  }
  embedding.path = path;
  embedding.name = path.stem().string();
  return embedding;
}

}  // namespace diffuse::io
