// AUTOMATIC1111's emphasis syntax (modules/prompt_parser.py, parse_prompt_attention): a prompt becomes
// runs of text, each with the weight its brackets give it.
//
//   (text)        weight x 1.1          [text]       weight / 1.1
//   (text:1.3)    weight x 1.3          \( \) \[ \] \\   the literal character
//   BREAK         (a whole word, upper case) its own run {"BREAK", -1 x enclosing weights}
//
// Unbalanced brackets are read the way A1111 reads them: an unclosed "(" or "[" still weights the rest
// of the prompt, a ")" or "]" with nothing open is text, and a "\" before any other character is dropped.
// Adjacent runs of equal weight are merged. Weights are doubles multiplied in A1111's order, so they
// equal its Python floats bit for bit.
#pragma once
#include <string>
#include <vector>

namespace diffuse::text {

struct WeightedText {
  std::string text;  // UTF-8
  double weight = 1.0;

  bool operator==(const WeightedText& other) const { return text == other.text && weight == other.weight; }
};

// Never empty: a prompt with no text gives {"", 1.0}. Throws diffuse::InvalidParameter("prompt", ...)
// when an explicit weight is not a number ("(word:1.2.3)"), where A1111 raises ValueError.
std::vector<WeightedText> parse_prompt_attention(const std::string& prompt);

// A1111 starts a new chunk only at a BREAK outside any brackets: the run {"BREAK", -1} exactly.
// Inside brackets (weight -1.1, -1.3, ...) the word is ordinary text and is tokenized.
inline bool is_chunk_break(const WeightedText& run) { return run.text == "BREAK" && run.weight == -1.0; }

}  // namespace diffuse::text
