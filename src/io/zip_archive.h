#pragma once
// The zip container of torch.save (since torch 1.6): records stored uncompressed, each starting on a
// 64-byte boundary so tensors can view them in place. Only what that writer makes is read (stored
// records, zip64 for large files); every offset and size is checked against the bytes there are.
// No libtorch here.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

namespace diffuse::io {

struct ZipRecord {
  uint64_t offset = 0;  // of the record's first byte in the archive
  uint64_t size = 0;
};

// True when the bytes start like a zip archive (a local file header).
bool looks_like_zip(const uint8_t* bytes, size_t size);

// Record names -> byte ranges, every range inside [0, size). Throws diffuse::Error starting with
// `where` for a damaged or truncated archive, a compressed or encrypted record, or a duplicate name.
std::map<std::string, ZipRecord> read_zip_directory(const uint8_t* bytes, size_t size, const std::string& where);

}  // namespace diffuse::io
