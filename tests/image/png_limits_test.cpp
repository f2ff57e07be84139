// Regressions from fuzz_png (docs/fuzzing.md): libpng allocates a text chunk's declared length before
// reading it, and read_png allocated the header's pixels before reading any, so a file of under 100
// bytes asked for about 2 GB. Both are refused now, before anything that size is allocated.
#include <gtest/gtest.h>

#include <string>

#include "image/png_file.h"
#include "util/error.h"

namespace diffuse::image {
namespace {

template <size_t N>
std::string bytes_of(const char (&text)[N]) {
  return std::string(text, N - 1);
}

std::string error_of(const std::string& png) {
  try {
    decode_png(png, "upload");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no diffuse::Error)";
}

// A 4x3 RGB header, then a tEXt chunk claiming 0x73424954 bytes of which the file holds 27.
const std::string kTextBomb = bytes_of("\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x04\x00\x00\x00\x03\x08\x02\x00\x00\x00\x3b\x96\x39\x91\x73\x42\x49\x54\x74\x45\x58\x74\x70\x61\x72\x61\x6d\x65\x74\x65\x72\x73\x00\x61\x20\x72\x65\x64\x20\x63\x69\x72\x63\x6c\x65");
// A 30000x20000 RGBA header (2.4 GB of pixels) with one short IDAT.
const std::string kHugeHeader = bytes_of("\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x75\x30\x00\x00\x4e\x20\x08\x06\x00\x00\x00\xcf\x95\x0b\x89\x00\x00\x00\x0b\x49\x44\x41\x54\x78\x9c\x63\x60\x40\x05\x00\x00\x10\x00\x01\x39\xbd\x8f\x65\x00\x00\x00\x00\x49\x45\x4e\x44\xae\x42\x60\x82");

TEST(PngLimits, ChunkLongerThanTheFileIsRefused) {
  EXPECT_NE(error_of(kTextBomb).find("upload: damaged PNG (a chunk runs past the end of the file"), std::string::npos)
      << error_of(kTextBomb);
}

TEST(PngLimits, ImageTooLargeForItsDataIsRefused) {
  EXPECT_NE(error_of(kHugeHeader).find("upload: damaged PNG (30000x20000 pixels cannot fit in 68 bytes)"),
            std::string::npos)
      << error_of(kHugeHeader);
}

}  // namespace
}  // namespace diffuse::image
