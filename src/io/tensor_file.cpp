#include "io/tensor_file.h"

namespace diffuse::io {

TensorFile TensorFile::open(const std::filesystem::path& path) {
  TensorFile file;
  if (is_checkpoint_path(path)) {
    file.checkpoint_.emplace(CheckpointFile::open(path));
  } else {
    file.safetensors_.emplace(SafetensorsFile::open(path));
  }
  return file;
}

const std::vector<TensorInfo>& TensorFile::tensors() const {
  return checkpoint_ ? checkpoint_->tensors() : safetensors_->tensors();
}

bool TensorFile::contains(const std::string& name) const {
  return checkpoint_ ? checkpoint_->contains(name) : safetensors_->contains(name);
}

const TensorInfo& TensorFile::info(const std::string& name) const {
  return checkpoint_ ? checkpoint_->info(name) : safetensors_->info(name);
}

at::Tensor TensorFile::tensor(const std::string& name, std::optional<at::ScalarType> convert_to) const {
  return checkpoint_ ? checkpoint_->tensor(name, convert_to) : safetensors_->tensor(name, convert_to);
}

}  // namespace diffuse::io
