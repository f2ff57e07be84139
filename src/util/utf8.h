#pragma once
// Strict UTF-8, as Python's bytes.decode("utf-8") reads it: for checking what files and requests
// carry (pickle strings, PNG text, mojibake repair). Lenient decoding for prompts is text/'s (ICU).
#include <optional>
#include <string>

namespace diffuse {

// The code points of `bytes`, or nullopt where they are not well-formed UTF-8: a bad lead or
// continuation byte, a truncated sequence, an overlong form, a surrogate or a value past U+10FFFF.
std::optional<std::u32string> decode_utf8(const std::string& bytes);

inline bool is_valid_utf8(const std::string& bytes) { return decode_utf8(bytes).has_value(); }

}  // namespace diffuse
