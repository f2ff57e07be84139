#pragma once
// Base64 (RFC 4648, with padding), as AUTOMATIC1111's API carries images.
#include <optional>
#include <string>

namespace diffuse {

std::string base64_encode(const std::string& bytes);
// nullopt for text that is not base64 (wrong characters, length or padding). Whitespace is skipped.
std::optional<std::string> base64_decode(const std::string& text);

}  // namespace diffuse
