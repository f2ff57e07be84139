// Code-point strings and the few ICU services the tokenizer's text cleaning needs.
// CLIP's reference cleans prompts as Python `str` (a sequence of code points), so the cleaning steps
// here work on std::u32string and can be written the way Python writes them.
#pragma once
#include <string>

namespace diffuse::text {

// Ill-formed UTF-8 becomes U+FFFD per maximal ill-formed subsequence (as Python's errors="replace").
std::u32string utf8_to_u32(const std::string& utf8);
std::string u32_to_utf8(const std::u32string& text);

// Strict decoding (as Python's bytes.decode("utf-8")): false if `bytes` is not well-formed UTF-8.
bool decode_utf8_strict(const std::string& bytes, std::u32string& out);

std::u32string normalize_nfc(const std::u32string& text);
std::u32string normalize_nfkc(const std::u32string& text);
// One level of compatibility decomposition ("ﬅ" -> "ſt"), empty if the character has none.
std::u32string raw_compat_decomposition(char32_t c);

// Python's str.lower() / str.upper(): full case mappings, final-sigma context, no locale.
std::u32string to_lower(const std::u32string& text);
std::u32string to_upper(const std::u32string& text);

// Python's str.isspace(): general category Zs, or bidirectional class WS, B or S.
bool is_python_space(char32_t c);

}  // namespace diffuse::text
