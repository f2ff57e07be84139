#pragma once
// A whole file mapped into memory, shared by every tensor that views it: the mapping is undone when
// the last holder lets go. Mapped copy-on-write: the file itself is never written, yet a caller that
// modifies a view in place (merging a LoRA, say) gets private pages instead of a SIGSEGV.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>

namespace diffuse {

class MappedFile {
 public:
  // Throws diffuse::Error naming `path` when it cannot be opened, is not a regular file or cannot be
  // mapped. An empty file maps to size() == 0 and data() == nullptr.
  static std::shared_ptr<const MappedFile> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return static_cast<const uint8_t*>(address_); }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  MappedFile() = default;
  std::filesystem::path path_;
  void* address_ = nullptr;
  size_t size_ = 0;
};

}  // namespace diffuse
