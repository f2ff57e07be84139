#include "text/prompt_attention.h"

#include <charconv>

#include <unicode/uchar.h>

#include "text/unicode_text.h"
#include "util/error.h"

namespace diffuse::text {
namespace {

// A1111 runs Python's `re` on a str, so \s, \d and \w are the Unicode classes Python gives them.
bool is_space(char32_t c) { return is_python_space(c); }

bool is_decimal_digit(char32_t c) { return u_charType(static_cast<UChar32>(c)) == U_DECIMAL_DIGIT_NUMBER; }

// Python's str.isalnum() or "_": letters (Lu Ll Lt Lm Lo) and anything with a numeric value.
bool is_word_char(char32_t c) {
  if (c == U'_') return true;
  switch (u_charType(static_cast<UChar32>(c))) {
    case U_UPPERCASE_LETTER:
    case U_LOWERCASE_LETTER:
    case U_TITLECASE_LETTER:
    case U_MODIFIER_LETTER:
    case U_OTHER_LETTER:
      return true;
    default:
      return u_getIntPropertyValue(static_cast<UChar32>(c), UCHAR_NUMERIC_TYPE) != U_NT_NONE;
  }
}

bool is_syntax_char(char32_t c) { return c == U'\\' || c == U'(' || c == U')' || c == U'[' || c == U']' || c == U':'; }

constexpr std::u32string_view kBreakWord = U"BREAK";

// The end of a match of  \s*\bBREAK\b\s*  starting exactly at `start`, or npos. `\b` looks at the
// whole string, as Python's does, so a BREAK at the edge of `text` always has a boundary there.
size_t break_match_end(const std::u32string& text, size_t start) {
  size_t word = start;
  while (word < text.size() && is_space(text[word])) ++word;
  if (text.compare(word, kBreakWord.size(), kBreakWord) != 0) return std::u32string::npos;
  if (word > 0 && is_word_char(text[word - 1])) return std::u32string::npos;
  size_t end = word + kBreakWord.size();
  if (end < text.size() && is_word_char(text[end])) return std::u32string::npos;
  while (end < text.size() && is_space(text[end])) ++end;
  return end;
}

// re.split(r"\s*\bBREAK\b\s*", text): the pieces between BREAKs (the first and last may be empty).
std::vector<std::u32string> split_at_breaks(const std::u32string& text) {
  std::vector<std::u32string> pieces;
  size_t piece_start = 0;
  size_t search = 0;
  while (search < text.size()) {
    size_t found = std::u32string::npos;
    size_t match_end = 0;
    for (size_t start = search; start < text.size(); ++start) {
      match_end = break_match_end(text, start);
      if (match_end != std::u32string::npos) {
        found = start;
        break;
      }
    }
    if (found == std::u32string::npos) break;
    pieces.push_back(text.substr(piece_start, found - piece_start));
    piece_start = search = match_end;
  }
  pieces.push_back(text.substr(piece_start));
  return pieces;
}

// float(text) for what  [+-]?[.\d]+  matched: Python reads Unicode decimal digits as their values and
// accepts "2.", ".5" and "+2", but not "." or "1.2.3".
double weight_value(const std::u32string& text) {
  std::string ascii;
  size_t digits = 0, dots = 0;
  for (char32_t c : text) {
    if (c == U'+') continue;  // from_chars takes no leading "+"
    if (c == U'-' || c == U'.') {
      dots += c == U'.';
      ascii.push_back(static_cast<char>(c));
    } else {
      ++digits;
      ascii.push_back(static_cast<char>('0' + u_charDigitValue(static_cast<UChar32>(c))));
    }
  }
  double value = 0.0;
  const auto parsed = std::from_chars(ascii.data(), ascii.data() + ascii.size(), value);
  if (digits == 0 || dots > 1 || parsed.ec != std::errc() || parsed.ptr != ascii.data() + ascii.size())
    throw InvalidParameter("prompt", "the weight '" + u32_to_utf8(text) + "' is not a number");
  return value;
}

// The one token A1111's re_attention reads at `pos` (its alternatives in its order).
struct AttentionToken {
  enum Kind { kEscaped, kOpenRound, kOpenSquare, kWeightClose, kCloseRound, kCloseSquare, kText } kind;
  size_t length;
  std::u32string weight;  // kWeightClose: the number as written
};

AttentionToken read_token(const std::u32string& text, size_t pos) {
  const char32_t c = text[pos];
  if (c == U'\\') {
    const bool escapes_next = pos + 1 < text.size() && (text[pos + 1] == U'(' || text[pos + 1] == U')' ||
                                                        text[pos + 1] == U'[' || text[pos + 1] == U']' ||
                                                        text[pos + 1] == U'\\');
    return {AttentionToken::kEscaped, escapes_next ? size_t{2} : size_t{1}, {}};
  }
  if (c == U'(') return {AttentionToken::kOpenRound, 1, {}};
  if (c == U'[') return {AttentionToken::kOpenSquare, 1, {}};
  if (c == U':') {
    //  :\s*([+-]?[.\d]+)\s*\)   (each part greedy; none can give back a character the next could use)
    size_t end = pos + 1;
    while (end < text.size() && is_space(text[end])) ++end;
    const size_t number_start = end;
    if (end < text.size() && (text[end] == U'+' || text[end] == U'-')) ++end;
    const size_t body_start = end;
    while (end < text.size() && (text[end] == U'.' || is_decimal_digit(text[end]))) ++end;
    const size_t number_end = end;
    while (end < text.size() && is_space(text[end])) ++end;
    if (number_end > body_start && end < text.size() && text[end] == U')')
      return {AttentionToken::kWeightClose, end + 1 - pos, text.substr(number_start, number_end - number_start)};
    return {AttentionToken::kText, 1, {}};
  }
  if (c == U')') return {AttentionToken::kCloseRound, 1, {}};
  if (c == U']') return {AttentionToken::kCloseSquare, 1, {}};
  size_t end = pos;
  while (end < text.size() && !is_syntax_char(text[end])) ++end;
  return {AttentionToken::kText, end - pos, {}};
}

struct Run {
  std::u32string text;
  double weight;
};

}  // namespace

std::vector<WeightedText> parse_prompt_attention(const std::string& prompt) {
  const std::u32string text = utf8_to_u32(prompt);
  const double round_multiplier = 1.1;
  const double square_multiplier = 1 / 1.1;

  std::vector<Run> runs;
  std::vector<size_t> open_round, open_square;  // the first run each open bracket weights
  auto multiply_from = [&runs](size_t first, double multiplier) {
    for (size_t i = first; i < runs.size(); ++i) runs[i].weight *= multiplier;
  };
  auto pop = [](std::vector<size_t>& stack) {
    const size_t top = stack.back();
    stack.pop_back();
    return top;
  };

  for (size_t pos = 0; pos < text.size();) {
    const AttentionToken token = read_token(text, pos);
    const std::u32string token_text = text.substr(pos, token.length);
    pos += token.length;
    if (token.kind == AttentionToken::kEscaped) {
      runs.push_back({token_text.substr(1), 1.0});
    } else if (token.kind == AttentionToken::kOpenRound) {
      open_round.push_back(runs.size());
    } else if (token.kind == AttentionToken::kOpenSquare) {
      open_square.push_back(runs.size());
    } else if (token.kind == AttentionToken::kWeightClose && !open_round.empty()) {
      const double weight = weight_value(token.weight);
      multiply_from(pop(open_round), weight);
    } else if (token.kind == AttentionToken::kCloseRound && !open_round.empty()) {
      multiply_from(pop(open_round), round_multiplier);
    } else if (token.kind == AttentionToken::kCloseSquare && !open_square.empty()) {
      multiply_from(pop(open_square), square_multiplier);
    } else {
      // Plain text, or a closing bracket / ":weight)" with nothing open: A1111 keeps it as text.
      const std::vector<std::u32string> pieces = split_at_breaks(token_text);
      for (size_t i = 0; i < pieces.size(); ++i) {
        if (i > 0) runs.push_back({std::u32string(kBreakWord), -1.0});
        runs.push_back({pieces[i], 1.0});
      }
    }
  }
  // Brackets never closed weight everything after them; round ones first, innermost last, as A1111.
  for (size_t first : open_round) multiply_from(first, round_multiplier);
  for (size_t first : open_square) multiply_from(first, square_multiplier);

  if (runs.empty()) runs.push_back({U"", 1.0});
  std::vector<WeightedText> merged;
  for (Run& run : runs) {
    if (!merged.empty() && merged.back().weight == run.weight)
      merged.back().text += u32_to_utf8(run.text);
    else
      merged.push_back({u32_to_utf8(run.text), run.weight});
  }
  return merged;
}

}  // namespace diffuse::text
