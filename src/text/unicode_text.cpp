#include "text/unicode_text.h"

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/ustring.h>

#include "util/error.h"
#include "util/utf8.h"

namespace diffuse::text {

namespace {

icu::UnicodeString to_icu(const std::u32string& text) {
  return icu::UnicodeString::fromUTF32(reinterpret_cast<const UChar32*>(text.data()),
                                       static_cast<int32_t>(text.size()));
}

std::u32string from_icu(const icu::UnicodeString& text) {
  std::u32string out;
  out.reserve(static_cast<size_t>(text.length()));
  for (int32_t i = 0; i < text.length(); i = text.moveIndex32(i, 1)) {
    out.push_back(static_cast<char32_t>(text.char32At(i)));
  }
  return out;
}

void check(UErrorCode status, const char* what) {
  if (U_FAILURE(status)) throw Error(std::string("ICU ") + what + " failed: " + u_errorName(status));
}

std::u32string normalize(const icu::Normalizer2& normalizer, const std::u32string& text) {
  UErrorCode status = U_ZERO_ERROR;
  icu::UnicodeString out = normalizer.normalize(to_icu(text), status);
  check(status, "normalization");
  return from_icu(out);
}

const icu::Normalizer2& nfkc_instance() {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* instance = icu::Normalizer2::getNFKCInstance(status);
  check(status, "NFKC data");
  return *instance;
}

}  // namespace

std::u32string utf8_to_u32(const std::string& utf8) {
  return from_icu(icu::UnicodeString::fromUTF8(icu::StringPiece(utf8.data(), static_cast<int32_t>(utf8.size()))));
}

std::string u32_to_utf8(const std::u32string& text) {
  std::string out;
  to_icu(text).toUTF8String(out);
  return out;
}

bool decode_utf8_strict(const std::string& bytes, std::u32string& out) {
  auto points = decode_utf8(bytes);
  if (!points) return false;
  out = std::move(*points);
  return true;
}

std::u32string normalize_nfc(const std::u32string& text) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
  check(status, "NFC data");
  return normalize(*nfc, text);
}

std::u32string normalize_nfkc(const std::u32string& text) { return normalize(nfkc_instance(), text); }

std::u32string raw_compat_decomposition(char32_t c) {
  icu::UnicodeString decomposition;
  if (!nfkc_instance().getRawDecomposition(static_cast<UChar32>(c), decomposition)) return {};
  return from_icu(decomposition);
}

std::u32string to_lower(const std::u32string& text) {
  icu::UnicodeString s = to_icu(text);
  s.toLower(icu::Locale::getRoot());
  return from_icu(s);
}

std::u32string to_upper(const std::u32string& text) {
  icu::UnicodeString s = to_icu(text);
  s.toUpper(icu::Locale::getRoot());
  return from_icu(s);
}

bool is_python_space(char32_t c) {
  const auto cp = static_cast<UChar32>(c);
  if (u_charType(cp) == U_SPACE_SEPARATOR) return true;
  const UCharDirection dir = u_charDirection(cp);
  return dir == U_WHITE_SPACE_NEUTRAL || dir == U_BLOCK_SEPARATOR || dir == U_SEGMENT_SEPARATOR;
}

}  // namespace diffuse::text
