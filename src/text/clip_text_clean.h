// The text CLIP's tokenizer actually splits: openai/CLIP simple_tokenizer.py's
//   whitespace_clean(basic_clean(text)).lower()
// basic_clean = ftfy.fix_text (see fix_text.h for the part carried), html.unescape twice, strip;
// whitespace_clean = every run of whitespace becomes one space, strip.
#pragma once
#include <string>

namespace diffuse::text {

// UTF-8 in, UTF-8 out (ill-formed input bytes become U+FFFD).
std::string clip_clean_text(const std::string& utf8);

}  // namespace diffuse::text
