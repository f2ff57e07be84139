#pragma once
// Small string tests every layer needs (C++17's std::string has neither).
#include <cctype>
#include <string>
#include <string_view>

namespace diffuse {

inline bool starts_with(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && text.compare(0, prefix.size(), prefix) == 0;
}

inline bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// ASCII lower case: names people type in any case ("Karras", "LANCZOS").
inline std::string to_lower(std::string text) {
  for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

}  // namespace diffuse
