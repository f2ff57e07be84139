#include "text/html_unescape.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <unordered_map>

#include "text/sloppy_cp1252.h"
#include "text/unicode_text.h"

namespace diffuse::text {

namespace {

#include "text/html5_entities.inc"

struct EntityTable {
  std::unordered_map<std::u32string, std::u32string> with_semicolon;  // "amp;" -> "&"
  std::unordered_map<std::u32string, std::u32string> legacy;          // "amp" -> "&"
};

std::u32string ascii(std::string_view s) { return std::u32string(s.begin(), s.end()); }

const EntityTable& entities() {
  static const EntityTable table = [] {
    EntityTable t;
    const std::string_view all(kHtml5Entities);
    for (size_t pos = 0; pos < all.size();) {
      size_t end = all.find(' ', pos);
      if (end == std::string_view::npos) end = all.size();
      const std::string_view entry = all.substr(pos, end - pos);
      pos = end + 1;
      if (entry.empty()) continue;
      const size_t colon = entry.find(':');
      std::string_view name = entry.substr(0, colon);
      const bool legacy = name.back() == '*';
      if (legacy) name.remove_suffix(1);
      std::u32string value;
      for (std::string_view hex = entry.substr(colon + 1); !hex.empty();) {
        const size_t comma = std::min(hex.find(','), hex.size());
        value.push_back(static_cast<char32_t>(std::stoul(std::string(hex.substr(0, comma)), nullptr, 16)));
        hex.remove_prefix(std::min(comma + 1, hex.size()));
      }
      t.with_semicolon[ascii(name) + U";"] = value;
      if (legacy) t.legacy[ascii(name)] = value;
    }
    return t;
  }();
  return table;
}

// ftfy's HTML_ENTITIES: "&name;" -> value, plus all-caps spellings of lower-case names when the caps
// form means nothing to html.unescape itself (so "&EACUTE;" -> "É", while "&AMP;" keeps its own entry).
const std::unordered_map<std::u32string, std::u32string>& ftfy_entities() {
  static const auto table = [] {
    std::unordered_map<std::u32string, std::u32string> t;
    for (const auto& [name, value] : entities().with_semicolon) t[U"&" + name] = value;
    for (const auto& [name, value] : entities().with_semicolon) {
      const std::u32string upper = U"&" + to_upper(name);
      if (to_lower(name) != name || upper == U"&" + name) continue;
      if (html_unescape(upper) == upper) t.emplace(upper, to_upper(value));
    }
    return t;
  }();
  return table;
}

bool is_digit(char32_t c) { return c >= U'0' && c <= U'9'; }
bool is_hex(char32_t c) { return is_digit(c) || (c >= U'a' && c <= U'f') || (c >= U'A' && c <= U'F'); }
bool is_alnum(char32_t c) { return is_digit(c) || (c >= U'a' && c <= U'z') || (c >= U'A' && c <= U'Z'); }

int hex_value(char32_t c) {
  if (is_digit(c)) return static_cast<int>(c - U'0');
  return static_cast<int>((c | 0x20) - U'a') + 10;
}

// Python's html._replace_charref for a numeric reference; `value` saturates above 0x10FFFF.
std::u32string numeric_reference(uint32_t value) {
  if (value == 0) return U"\uFFFD";
  if (value == 0x0D) return U"\r";
  if (value >= 0x80 && value <= 0x9F) return std::u32string(1, sloppy_cp1252_decode(static_cast<uint8_t>(value)));
  if ((value >= 0xD800 && value <= 0xDFFF) || value > 0x10FFFF) return U"\uFFFD";
  const bool invalid = (value >= 0x01 && value <= 0x08) || value == 0x0B || (value >= 0x0E && value <= 0x1F) ||
                       value == 0x7F || (value >= 0xFDD0 && value <= 0xFDEF) || (value & 0xFFFE) == 0xFFFE;
  if (invalid) return U"";
  return std::u32string(1, static_cast<char32_t>(value));
}

}  // namespace

std::u32string html_unescape(const std::u32string& text) {
  if (text.find(U'&') == std::u32string::npos) return text;
  const EntityTable& table = entities();
  std::u32string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != U'&') {
      out.push_back(text[i++]);
      continue;
    }
    const size_t start = i + 1;
    size_t j = start;
    // Python's pattern: &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)
    if (j < text.size() && text[j] == U'#') {
      const bool hex = j + 1 < text.size() && (text[j + 1] == U'x' || text[j + 1] == U'X');
      size_t k = j + (hex ? 2 : 1);
      uint32_t value = 0;
      const size_t digits_start = k;
      while (k < text.size() && (hex ? is_hex(text[k]) : is_digit(text[k]))) {
        const uint32_t digit = static_cast<uint32_t>(hex ? hex_value(text[k]) : static_cast<int>(text[k] - U'0'));
        value = value > 0x10FFFF ? value : value * (hex ? 16 : 10) + digit;
        ++k;
      }
      if (k == digits_start) {  // "&#" not followed by digits: no reference
        out.push_back(U'&');
        i = start;
        continue;
      }
      if (k < text.size() && text[k] == U';') ++k;
      out += numeric_reference(value);
      i = k;
      continue;
    }
    static constexpr std::u32string_view kStop = U"\t\n\f <&#;";
    while (j < text.size() && j - start < 32 && kStop.find(text[j]) == std::u32string_view::npos) ++j;
    if (j == start) {
      out.push_back(U'&');
      i = start;
      continue;
    }
    if (j < text.size() && text[j] == U';') ++j;
    const std::u32string name = text.substr(start, j - start);
    i = j;
    if (name.back() == U';') {
      if (auto it = table.with_semicolon.find(name); it != table.with_semicolon.end()) {
        out += it->second;
        continue;
      }
    } else if (auto it = table.legacy.find(name); it != table.legacy.end()) {
      out += it->second;
      continue;
    }
    // The longest legacy name that prefixes the reference (at least 2 characters), the rest kept as text.
    bool matched = false;
    for (size_t len = name.size() - 1; len >= 2 && !matched; --len) {
      if (auto it = table.legacy.find(name.substr(0, len)); it != table.legacy.end()) {
        out += it->second;
        out += name.substr(len);
        matched = true;
      }
    }
    if (!matched) out += U"&" + name;
  }
  return out;
}

std::u32string ftfy_unescape_html(const std::u32string& text) {
  const auto& table = ftfy_entities();
  std::u32string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    // ftfy's pattern: &#?[0-9A-Za-z]{1,24};
    size_t end = std::u32string::npos;
    if (text[i] == U'&') {
      for (size_t body = i + 1; body <= i + 2 && end == std::u32string::npos; ++body) {
        if (body == i + 2 && text[i + 1] != U'#') break;
        size_t k = body;
        while (k < text.size() && k - body < 24 && is_alnum(text[k])) ++k;
        if (k > body && k < text.size() && text[k] == U';') end = k + 1;
      }
    }
    if (end == std::u32string::npos) {
      out.push_back(text[i++]);
      continue;
    }
    const std::u32string reference = text.substr(i, end - i);
    i = end;
    if (auto it = table.find(reference); it != table.end()) {
      out += it->second;
    } else if (reference[1] == U'#') {
      // Numeric: decoded as html.unescape does, unless that leaves the ';' unconsumed.
      const std::u32string decoded = html_unescape(reference);
      out += decoded.find(U';') == std::u32string::npos ? decoded : reference;
    } else {
      out += reference;
    }
  }
  return out;
}

}  // namespace diffuse::text
