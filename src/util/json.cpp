#include "util/json.h"

#include <fstream>
#include <limits>
#include <sstream>

#include "util/error.h"

namespace diffuse {

namespace {

// Strict JSON has no infinity: the bare tokens become marker strings, turned into numbers after parsing.
constexpr const char* kPositiveInfinity = "\\u0001+inf";  // as escaped in the JSON text
constexpr const char* kNegativeInfinity = "\\u0001-inf";

std::string replace_python_constants(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size()) {
        out += text[++i];
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      out += c;
    } else if (text.compare(i, 9, "-Infinity") == 0) {
      out += '"' + std::string(kNegativeInfinity) + '"';
      i += 8;
    } else if (text.compare(i, 8, "Infinity") == 0) {
      out += '"' + std::string(kPositiveInfinity) + '"';
      i += 7;
    } else if (text.compare(i, 3, "NaN") == 0) {
      out += "null";
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

void restore_infinities(nlohmann::json& value) {
  if (value.is_structured()) {
    for (auto& child : value) restore_infinities(child);
  } else if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    if (text == "\x01+inf") value = std::numeric_limits<double>::infinity();
    else if (text == "\x01-inf") value = -std::numeric_limits<double>::infinity();
  }
}

}  // namespace

bool json_nests_deeper_than(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

nlohmann::json parse_json(const std::string& text, const std::string& source) {
  if (json_nests_deeper_than(text)) {
    throw Error(source + ": malformed JSON (nested deeper than " + std::to_string(kMaxJsonDepth) + " levels)");
  }
  try {
    auto value = nlohmann::json::parse(replace_python_constants(text));
    restore_infinities(value);
    return value;
  } catch (const nlohmann::json::exception& e) {
    throw Error(source + ": malformed JSON (" + e.what() + ")");
  }
}

nlohmann::json read_json_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open file");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_json(text.str(), path.string());
}

}  // namespace diffuse
