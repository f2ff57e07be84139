#include "io/zip_archive.h"

#include <algorithm>
#include <limits>

#include "util/error.h"

namespace diffuse::io {

namespace {

constexpr uint32_t kLocalHeader = 0x04034b50;
constexpr uint32_t kCentralHeader = 0x02014b50;
constexpr uint32_t kEndOfDirectory = 0x06054b50;
constexpr uint32_t kZip64EndOfDirectory = 0x06064b50;
constexpr uint32_t kZip64Locator = 0x07064b50;

class Bytes {
 public:
  Bytes(const uint8_t* data, size_t size, const std::string& where) : data_(data), size_(size), where_(where) {}
  uint64_t read(uint64_t offset, int n, const char* what) const {
    if (offset > size_ || static_cast<uint64_t>(n) > size_ - offset) {
      throw Error(where_ + "not a valid zip archive: " + what + " at byte " + std::to_string(offset) +
                  " runs past the end (" + std::to_string(size_) + " bytes; truncated?)");
    }
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(data_[offset + i]) << (8 * i);
    return v;
  }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const uint8_t* data_;
  size_t size_;
  const std::string& where_;
};

}  // namespace

bool looks_like_zip(const uint8_t* bytes, size_t size) {
  return size >= 4 && bytes[0] == 'P' && bytes[1] == 'K' && bytes[2] == 3 && bytes[3] == 4;
}

std::map<std::string, ZipRecord> read_zip_directory(const uint8_t* data, size_t size, const std::string& where) {
  const Bytes bytes(data, size, where);
  const auto bad = [&where](const std::string& why) { return Error(where + "not a valid zip archive: " + why); };
  if (size < 22) throw bad("too short for an end-of-directory record");

  // The end-of-central-directory record: the last 22 bytes, or earlier by a comment of up to 64 KiB.
  uint64_t end = std::numeric_limits<uint64_t>::max();
  const uint64_t lowest = size > 22 + 65535 ? size - 22 - 65535 : 0;
  for (uint64_t at = size - 22 + 1; at-- > lowest;) {
    if (bytes.read(at, 4, "signature") == kEndOfDirectory && at + 22 + bytes.read(at + 20, 2, "comment length") == size) {
      end = at;
      break;
    }
  }
  if (end == std::numeric_limits<uint64_t>::max()) throw bad("no end-of-directory record (truncated?)");
  uint64_t entries = bytes.read(end + 10, 2, "entry count");
  uint64_t directory_size = bytes.read(end + 12, 4, "directory size");
  uint64_t directory_offset = bytes.read(end + 16, 4, "directory offset");
  if (end >= 20 && bytes.read(end - 20, 4, "zip64 locator") == kZip64Locator) {
    const uint64_t zip64_end = bytes.read(end - 20 + 8, 8, "zip64 end offset");
    if (bytes.read(zip64_end, 4, "zip64 end record") != kZip64EndOfDirectory) throw bad("zip64 end record missing");
    entries = bytes.read(zip64_end + 32, 8, "zip64 entry count");
    directory_size = bytes.read(zip64_end + 40, 8, "zip64 directory size");
    directory_offset = bytes.read(zip64_end + 48, 8, "zip64 directory offset");
  }
  if (directory_offset > size || directory_size > size - directory_offset) throw bad("the directory lies outside the file");
  // Each entry takes at least 46 bytes: the count cannot promise more than the directory holds.
  if (entries > directory_size / 46) throw bad(std::to_string(entries) + " entries cannot fit a " +
                                               std::to_string(directory_size) + "-byte directory");

  std::map<std::string, ZipRecord> records;
  uint64_t at = directory_offset;
  const uint64_t directory_end = directory_offset + directory_size;
  for (uint64_t i = 0; i < entries; ++i) {
    if (bytes.read(at, 4, "directory entry") != kCentralHeader) throw bad("directory entry " + std::to_string(i) + " is damaged");
    const uint64_t flags = bytes.read(at + 8, 2, "flags");
    const uint64_t method = bytes.read(at + 10, 2, "compression method");
    uint64_t compressed = bytes.read(at + 20, 4, "compressed size");
    uint64_t uncompressed = bytes.read(at + 24, 4, "size");
    const uint64_t name_length = bytes.read(at + 28, 2, "name length");
    const uint64_t extra_length = bytes.read(at + 30, 2, "extra length");
    const uint64_t comment_length = bytes.read(at + 32, 2, "comment length");
    uint64_t local = bytes.read(at + 42, 4, "local header offset");
    const uint64_t name_at = at + 46;
    if (name_at + name_length + extra_length + comment_length > directory_end) throw bad("directory entry " + std::to_string(i) + " runs past the directory");
    const std::string name(reinterpret_cast<const char*>(data + name_at), name_length);
    // zip64: the sizes and offset that do not fit 32 bits follow in the extra field, in this order.
    for (uint64_t extra = name_at + name_length; extra + 4 <= name_at + name_length + extra_length;) {
      const uint64_t id = bytes.read(extra, 2, "extra field");
      const uint64_t length = bytes.read(extra + 2, 2, "extra field");
      if (id == 1) {
        uint64_t field = extra + 4;
        const uint64_t field_end = field + length;
        const auto take = [&](uint64_t& value) {
          if (value != 0xFFFFFFFFu) return;
          if (field + 8 > field_end) throw bad("record '" + name + "': short zip64 field");
          value = bytes.read(field, 8, "zip64 field");
          field += 8;
        };
        take(uncompressed);
        take(compressed);
        take(local);
      }
      extra += 4 + length;
    }
    if (flags & 1) throw bad("record '" + name + "' is encrypted");
    if (method != 0) throw bad("record '" + name + "' is compressed (method " + std::to_string(method) + "); torch.save stores records uncompressed");
    if (compressed != uncompressed) throw bad("record '" + name + "': stored sizes differ");
    if (bytes.read(local, 4, "local header") != kLocalHeader) throw bad("record '" + name + "': local header missing");
    const uint64_t begin = local + 30 + bytes.read(local + 26, 2, "name length") + bytes.read(local + 28, 2, "extra length");
    if (begin > size || uncompressed > size - begin) {
      throw bad("record '" + name + "' (" + std::to_string(uncompressed) + " bytes at " + std::to_string(begin) +
                ") runs past the end of the file (truncated?)");
    }
    if (!records.emplace(name, ZipRecord{begin, uncompressed}).second) throw bad("record '" + name + "' appears twice");
    at = name_at + name_length + extra_length + comment_length;
  }
  return records;
}

}  // namespace diffuse::io
