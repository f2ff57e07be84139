// Fuzzes the PNG reader (src/image/png_file.cpp over libpng) through decode_png, the in-memory entry
// that shares read_png's reading code. The chunk CRCs of the input are recomputed first (when its
// chunk lengths fit), so that mutations reach the decoder instead of failing libpng's CRC check. For
// an accepted image every pixel byte is read. A diffuse::Error is a refusal; any other exception, a
// sanitizer report or pixels that disagree with the reported size are a finding.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "image/png_file.h"
#include "util/error.h"

namespace {

// Chunks after the 8-byte signature: length (4, big-endian), type (4), data, CRC of type + data (4).
void fix_crcs(std::vector<uint8_t>& png) {
  size_t at = 8;
  while (at + 12 <= png.size()) {
    const uint32_t length = uint32_t{png[at]} << 24 | uint32_t{png[at + 1]} << 16 | uint32_t{png[at + 2]} << 8 | png[at + 3];
    if (length > png.size() - at - 12) return;
    const uLong crc = crc32(crc32(0L, Z_NULL, 0), png.data() + at + 4, static_cast<uInt>(length + 4));
    uint8_t* out = png.data() + at + 8 + length;
    out[0] = static_cast<uint8_t>(crc >> 24);
    out[1] = static_cast<uint8_t>(crc >> 16);
    out[2] = static_cast<uint8_t>(crc >> 8);
    out[3] = static_cast<uint8_t>(crc);
    at += 12 + length;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> png(data, data + size);
  fix_crcs(png);
  try {
    const diffuse::image::PngImage image =
        diffuse::image::decode_png(std::string(png.begin(), png.end()), "fuzz.png");
    FUZZ_CHECK(image.channels >= 1 && image.channels <= 4);
    FUZZ_CHECK(image.pixels.dim() == 3 && image.pixels.size(0) == image.height && image.pixels.size(1) == image.width &&
               image.pixels.size(2) == image.channels && image.pixels.scalar_type() == at::kByte);
    fuzz::touch(image.pixels.data_ptr(), image.pixels.nbytes());
    for (const auto& [key, value] : image.text) {
      fuzz::touch(key.data(), key.size());
      fuzz::touch(value.data(), value.size());
    }
  } catch (const diffuse::Error&) {
    // a refusal
  }
  return 0;
}
