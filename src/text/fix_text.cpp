#include "text/fix_text.h"

#include <algorithm>
#include <optional>

#include "text/html_unescape.h"
#include "text/sloppy_cp1252.h"
#include "text/unicode_text.h"

namespace diffuse::text {

namespace {

// ftfy fixes text line by line, in pieces of at most this many characters.
constexpr size_t kMaxDecodeLength = 1000000;

bool is_ascii(const std::u32string& text) {
  for (char32_t c : text) {
    if (c >= 0x80) return false;
  }
  return true;
}

// text.encode("latin-1") or text.encode("sloppy-windows-1252"); nullopt where a character has no byte.
std::optional<std::string> encode_single_byte(const std::u32string& text, bool latin1) {
  std::string bytes;
  bytes.reserve(text.size());
  for (char32_t c : text) {
    std::optional<uint8_t> byte;
    if (latin1) {
      if (c <= 0xFF) byte = static_cast<uint8_t>(c);
    } else {
      byte = sloppy_cp1252_encode(c);
    }
    if (!byte) return std::nullopt;
    if (!latin1 && *byte == 0x1A) {
      bytes += "\xEF\xBF\xBD";  // a character lost before the mojibake happened stays U+FFFD
    } else {
      bytes.push_back(static_cast<char>(*byte));
    }
  }
  return bytes;
}

// The byte a character came from if it is mojibake of Windows-1252 (or Latin-1 for the C1 controls).
std::optional<uint8_t> mojibake_byte(char32_t c) {
  if (c < 0x80) return std::nullopt;
  if (auto byte = sloppy_cp1252_encode(c)) return byte;
  if (c <= 0x9F) return static_cast<uint8_t>(c);
  return std::nullopt;
}

// ftfy's decode_inconsistent_utf8: mojibake inside otherwise good text. Each run of characters whose bytes
// form one well-formed multi-byte UTF-8 sequence is decoded on its own.
std::u32string decode_inconsistent_utf8(const std::u32string& text) {
  std::u32string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const std::optional<uint8_t> lead = mojibake_byte(text[i]);
    size_t continuations = 0;
    if (lead && *lead >= 0xC2 && *lead <= 0xDF) continuations = 1;
    if (lead && *lead >= 0xE0 && *lead <= 0xEF) continuations = 2;
    if (lead && *lead >= 0xF0 && *lead <= 0xF4) continuations = 3;
    if (continuations > 0 && i + continuations < text.size()) {
      std::string bytes(1, static_cast<char>(*lead));
      for (size_t k = 1; k <= continuations; ++k) {
        const std::optional<uint8_t> byte = mojibake_byte(text[i + k]);
        if (!byte || *byte < 0x80 || *byte > 0xBF) break;
        bytes.push_back(static_cast<char>(*byte));
      }
      std::u32string decoded;
      if (bytes.size() == continuations + 1 && decode_utf8_strict(bytes, decoded)) {
        out += decoded;
        i += continuations + 1;
        continue;
      }
    }
    out.push_back(text[i++]);
  }
  return out;
}

// One step of ftfy's fix_encoding: the whole text re-read as UTF-8 from Latin-1, then from sloppy
// Windows-1252; failing both, embedded sequences alone.
std::u32string fix_encoding_step(const std::u32string& text) {
  if (is_ascii(text)) return text;
  for (bool latin1 : {true, false}) {
    const std::optional<std::string> bytes = encode_single_byte(text, latin1);
    std::u32string decoded;
    if (bytes && decode_utf8_strict(*bytes, decoded)) return decoded;
  }
  return decode_inconsistent_utf8(text);
}

std::u32string fix_encoding(std::u32string text) {
  while (true) {
    std::u32string fixed = fix_encoding_step(text);
    if (fixed == text) return text;
    text = std::move(fixed);
  }
}

bool is_latin_ligature(char32_t c) {
  return c == 0x132 || c == 0x133 || c == 0x149 || (c >= 0x1C4 && c <= 0x1CC) || (c >= 0x1F1 && c <= 0x1F3) ||
         (c >= 0xFB00 && c <= 0xFB06);
}

// Removed by ftfy's remove_control_chars; \t \n \f \r, C1 controls, joiners and bidi marks are kept.
bool is_unwanted_control(char32_t c) {
  return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
         c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

// The per-character fixers that follow fix_encoding, each applied to the whole text in ftfy's order.
std::u32string fix_characters(const std::u32string& text) {
  std::u32string t;
  for (char32_t c : text) t.push_back(c >= 0x80 && c <= 0x9F ? sloppy_cp1252_decode(static_cast<uint8_t>(c)) : c);

  std::u32string ligatures;
  for (char32_t c : t) ligatures += is_latin_ligature(c) ? raw_compat_decomposition(c) : std::u32string(1, c);

  std::u32string width;
  for (char32_t c : ligatures) {
    if (c == 0x3000) {
      width.push_back(U' ');
    } else if (c >= 0xFF01 && c <= 0xFFEF) {
      width += normalize_nfkc(std::u32string(1, c));
    } else {
      width.push_back(c);
    }
  }

  std::u32string quotes;
  for (char32_t c : width) {
    if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B)) c = U'\'';
    if (c >= 0x201C && c <= 0x201F) c = U'"';
    quotes.push_back(c);
  }

  std::u32string breaks;
  for (size_t i = 0; i < quotes.size(); ++i) {
    const char32_t c = quotes[i];
    if (c == U'\r' && i + 1 < quotes.size() && quotes[i + 1] == U'\n') continue;  // "\r\n" -> "\n"
    breaks.push_back(c == U'\r' || c == 0x2028 || c == 0x2029 || c == 0x85 ? U'\n' : c);
  }

  // ANSI terminal escapes: ESC [ digits-and-semicolons letter.
  std::u32string escapes;
  for (size_t i = 0; i < breaks.size(); ++i) {
    if (breaks[i] == 0x1B && i + 1 < breaks.size() && breaks[i + 1] == U'[') {
      size_t k = i + 2;
      while (k < breaks.size() && ((breaks[k] >= U'0' && breaks[k] <= U'9') || breaks[k] == U';')) ++k;
      if (k < breaks.size() && ((breaks[k] | 0x20) >= U'a' && (breaks[k] | 0x20) <= U'z')) {
        i = k;
        continue;
      }
    }
    escapes.push_back(breaks[i]);
  }

  std::u32string controls;
  for (char32_t c : escapes) {
    if (!is_unwanted_control(c)) controls.push_back(c);
  }
  return normalize_nfc(controls);
}

// ftfy's fix_and_explain on one segment: every fixer in turn, until a round changes nothing.
std::u32string fix_segment(std::u32string text, bool unescape_html) {
  while (true) {
    const std::u32string original = text;
    if (unescape_html) text = ftfy_unescape_html(text);
    text = fix_characters(fix_encoding(std::move(text)));
    if (text == original) return text;
  }
}

}  // namespace

std::u32string fix_text(const std::u32string& text) {
  std::u32string out;
  // Text that already holds a '<' is taken to be HTML-ish on purpose, and from that line on entities stay.
  bool unescape_html = true;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(U'\n', pos);
    end = end == std::u32string::npos ? text.size() : end + 1;
    end = std::min(end, pos + kMaxDecodeLength);
    const std::u32string segment = text.substr(pos, end - pos);
    if (segment.find(U'<') != std::u32string::npos) unescape_html = false;
    out += fix_segment(segment, unescape_html);
    pos = end;
  }
  return out;
}

}  // namespace diffuse::text
