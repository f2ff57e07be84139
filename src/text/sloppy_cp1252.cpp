#include "text/sloppy_cp1252.h"

#include <array>
#include <unordered_map>

#include <unicode/ucnv.h>

#include "util/error.h"

namespace diffuse::text {

namespace {

struct Codec {
  std::array<char32_t, 256> decode{};
  std::unordered_map<char32_t, uint8_t> encode;
};

// Built from ICU's windows-1252 converter rather than a hand-copied table.
const Codec& codec() {
  static const Codec c = [] {
    Codec built;
    UErrorCode status = U_ZERO_ERROR;
    UConverter* converter = ucnv_open("windows-1252", &status);
    if (U_FAILURE(status)) throw Error(std::string("ICU has no windows-1252 converter: ") + u_errorName(status));
    for (int b = 0; b < 256; ++b) {
      const char byte = static_cast<char>(b);
      UChar unit[4];
      status = U_ZERO_ERROR;
      const int32_t n = ucnv_toUChars(converter, unit, 4, &byte, 1, &status);
      char32_t c = static_cast<char32_t>(b);  // unassigned: Latin-1
      if (U_SUCCESS(status) && n == 1 && unit[0] != 0xFFFD && unit[0] != 0x1A) c = unit[0];
      if (b == 0x1A) c = 0xFFFD;  // as ftfy: byte 0x1A stands for a character that was already lost
      built.decode[static_cast<size_t>(b)] = c;
      built.encode.emplace(c, static_cast<uint8_t>(b));
    }
    ucnv_close(converter);
    return built;
  }();
  return c;
}

}  // namespace

char32_t sloppy_cp1252_decode(uint8_t byte) { return codec().decode[byte]; }

std::optional<uint8_t> sloppy_cp1252_encode(char32_t c) {
  const auto& table = codec().encode;
  auto it = table.find(c);
  if (it == table.end()) return std::nullopt;
  return it->second;
}

}  // namespace diffuse::text
