#pragma once
// Reading torch checkpoints (.ckpt, .pt, .pth, .bin) without running them: the zip format of
// torch.save (data.pkl + data/<key> records) and the legacy format before torch 1.6 (pickles in a
// row, then the raw storages). The pickles go through the restricted reader (io/pickle_reader.h);
// every storage, offset, shape and stride is checked against the bytes the file holds before a
// tensor views them. Tensors view the memory-mapped file as safetensors ones do.
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "io/pickle_reader.h"
#include "io/safetensors.h"
#include "util/mapped_file.h"

namespace diffuse::io {

// Extensions read as torch checkpoints.
bool is_checkpoint_path(const std::filesystem::path& path);

class CheckpointFile {
 public:
  // Reads and checks the whole file; throws diffuse::Error naming the file and the defect (the
  // forbidden global as module.name, the missing record, the storage too small for a tensor).
  static CheckpointFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  const std::string& format() const { return format_; }  // "zip" or "legacy"

  // The state dict: root["state_dict"] where the root has one (Lightning and CompVis files), else the
  // root's own tensors; in the file's order. Other values beside the tensors are left out.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  at::Tensor tensor(const std::string& name, std::optional<at::ScalarType> convert_to = std::nullopt) const;

  // The whole pickled object, for files that are not state dicts (textual-inversion embeddings).
  const pickle::Document& document() const { return *document_; }
  pickle::Ref root() const { return document_->root; }
  // The tensor a Tensor value stands for (a view of the file, or contiguous copy of a strided one).
  at::Tensor tensor_of(pickle::Ref value) const;
  // A dict's string-keyed tensor entries, in order; other entries are skipped.
  std::vector<std::pair<std::string, at::Tensor>> tensors_in(pickle::Ref dict) const;

 private:
  CheckpointFile() = default;
  struct StorageBytes {
    const uint8_t* data = nullptr;
    at::ScalarType type = at::kFloat;
  };
  void read_zip(const std::string& where);
  void read_legacy(const std::string& where);
  void index_state_dict(const std::string& where);

  std::filesystem::path path_;
  std::string format_;
  std::shared_ptr<const MappedFile> mapping_;
  std::shared_ptr<pickle::Document> document_;
  std::vector<StorageBytes> storage_bytes_;  // by Document::storages index
  std::vector<TensorInfo> tensors_;
  std::vector<pickle::Ref> tensor_values_;   // beside tensors_
  std::map<std::string, size_t> index_;
};

}  // namespace diffuse::io
