#include "text/prompt_schedule.h"

#include <charconv>
#include <cmath>
#include <set>
#include <unordered_map>

#include "text/unicode_text.h"
#include "util/error.h"

// A1111's grammar (lark, Earley, default ambiguity resolution):
//   start:       (prompt | /[][():]/+)*
//   prompt:      (emphasized | scheduled | alternate | plain | WHITESPACE)*
//   emphasized:  "(" prompt ")" | "(" prompt ":" prompt ")" | "[" prompt "]"
//   scheduled:   "[" [prompt ":"] prompt ":" [WHITESPACE] NUMBER [WHITESPACE] "]"
//   alternate:   "[" prompt ("|" [prompt])+ "]"
//   plain:       /([^\\\[\]():|]|\\.)+/          NUMBER: lark's SIGNED_NUMBER
// Inside a prompt every bracket must form one of the three bracketed rules, and which one is fixed by
// the first ")", "]", ":" or "|" after its content, so a bracket at a given position parses one way or
// not at all. Only at the top level may a bracket that forms nothing be plain text; where a bracket
// forms something, lark's resolution takes that reading, and so does this parser. Emphasis brackets
// and stray top-level brackets come out of A1111's transformer as written; only the scheduled and
// alternate rules change the text from step to step.

namespace diffuse::text {
namespace {

struct Node;
using Sequence = std::vector<Node>;

struct Node {
  enum Kind { kText, kEdit, kAlternation } kind = kText;
  std::u32string text;          // kText: verbatim
  std::vector<Sequence> parts;  // kEdit: {before, after}; kAlternation: the options
  std::u32string when_text;     // kEdit: the NUMBER as written
  int64_t when = 0;             // kEdit: the last step of `before`, as A1111 computes it
};

void append_text(Sequence& sequence, std::u32string_view text) {
  if (!sequence.empty() && sequence.back().kind == Node::kText)
    sequence.back().text += text;
  else
    sequence.push_back({Node::kText, std::u32string(text), {}, {}, 0});
}

void append_all(Sequence& sequence, const Sequence& nodes) {
  for (const Node& node : nodes) {
    if (node.kind == Node::kText)
      append_text(sequence, node.text);
    else
      sequence.push_back(node);
  }
}

bool is_digit(char32_t c) { return c >= U'0' && c <= U'9'; }

class ScheduleParser {
 public:
  explicit ScheduleParser(const std::u32string& text) : text_(text) {}

  // The whole prompt as the start rule reads it, or nullopt where the grammar has no parse at all.
  std::optional<Sequence> parse() {
    Sequence result;
    size_t pos = 0;
    while (true) {
      pos = parse_prompt(pos, result, 0);
      if (pos == text_.size()) return result;
      const char32_t c = text_[pos];
      // Stopped at a bracket or ":" that forms nothing: the start rule's /[][():]/ takes it as text.
      // A "|" outside an alternation or a "\" with nothing to escape has no reading at all.
      if (c != U'[' && c != U']' && c != U'(' && c != U')' && c != U':') return std::nullopt;
      append_text(result, text_.substr(pos, 1));
      ++pos;
    }
  }

 private:
  struct Bracketed {
    bool ok = false;
    size_t end = 0;
    Sequence nodes;
  };

  char32_t at(size_t pos) const { return pos < text_.size() ? text_[pos] : U'\0'; }

  // The prompt rule from `pos`, as far as it reaches; returns where it stopped.
  size_t parse_prompt(size_t pos, Sequence& out, int depth) {
    while (pos < text_.size()) {
      const char32_t c = text_[pos];
      if (c == U'\\') {
        // plain's \\. : "." is any character but a newline.
        if (pos + 1 >= text_.size() || text_[pos + 1] == U'\n') break;
        append_text(out, std::u32string_view(text_).substr(pos, 2));
        pos += 2;
      } else if (c == U'(' || c == U'[') {
        const Bracketed& bracketed = parse_bracketed(pos, depth);
        if (!bracketed.ok) break;
        append_all(out, bracketed.nodes);
        pos = bracketed.end;
      } else if (c == U')' || c == U']' || c == U':' || c == U'|') {
        break;
      } else {
        append_text(out, std::u32string_view(text_).substr(pos, 1));
        ++pos;
      }
    }
    return pos;
  }

  // emphasized, scheduled or alternate at the bracket at `pos`. A bracket always parses the same way,
  // and the top level retries the brackets inside one that failed, so results are kept per position.
  const Bracketed& parse_bracketed(size_t pos, int depth) {
    if (const auto known = memo_.find(pos); known != memo_.end()) return known->second;
    if (depth >= kMaxScheduleNesting)
      throw InvalidParameter("prompt", "brackets nested more than " + std::to_string(kMaxScheduleNesting) + " deep");
    Bracketed result;
    const bool round = text_[pos] == U'(';
    Sequence first;
    size_t end = parse_prompt(pos + 1, first, depth + 1);
    if (round) {
      Sequence second;
      const bool has_weight = at(end) == U':';
      if (has_weight) end = parse_prompt(end + 1, second, depth + 1);
      if (at(end) == U')') {
        append_text(result.nodes, U"(");
        append_all(result.nodes, first);
        if (has_weight) {
          append_text(result.nodes, U":");
          append_all(result.nodes, second);
        }
        append_text(result.nodes, U")");
        result = {true, end + 1, std::move(result.nodes)};
      }
    } else if (at(end) == U']') {
      append_text(result.nodes, U"[");
      append_all(result.nodes, first);
      append_text(result.nodes, U"]");
      result = {true, end + 1, std::move(result.nodes)};
    } else if (at(end) == U'|') {
      Node alternation{Node::kAlternation, {}, {std::move(first)}, {}, 0};
      while (at(end) == U'|') {
        Sequence option;
        end = parse_prompt(end + 1, option, depth + 1);
        alternation.parts.push_back(std::move(option));
      }
      if (at(end) == U']') result = {true, end + 1, {std::move(alternation)}};
    } else if (at(end) == U':') {
      // [to:when] when a number follows the ":", else [from:to:when]; never both at once.
      Node edit{Node::kEdit, {}, {}, {}, 0};
      if (const size_t tail_end = parse_when(end + 1, edit.when_text); tail_end != std::u32string::npos) {
        edit.parts = {Sequence{}, std::move(first)};
        result = {true, tail_end, {std::move(edit)}};
      } else {
        Sequence after;
        end = parse_prompt(end + 1, after, depth + 1);
        if (at(end) == U':') {
          if (const size_t tail = parse_when(end + 1, edit.when_text); tail != std::u32string::npos) {
            edit.parts = {std::move(first), std::move(after)};
            result = {true, tail, {std::move(edit)}};
          }
        }
      }
    }
    return memo_[pos] = std::move(result);
  }

  // [WHITESPACE] NUMBER [WHITESPACE] "]" from `pos`: the position after the "]" (and the number in
  // `number`), or npos. lark's dynamic lexer takes each terminal's longest match, as here.
  size_t parse_when(size_t pos, std::u32string& number) const {
    while (pos < text_.size() && is_python_space(text_[pos])) ++pos;
    const size_t start = pos;
    if (at(pos) == U'+' || at(pos) == U'-') ++pos;
    const size_t int_start = pos;
    while (is_digit(at(pos))) ++pos;
    const bool has_int = pos > int_start;
    bool has_fraction_digits = false;
    if (at(pos) == U'.') {
      size_t fraction = pos + 1;
      while (is_digit(at(fraction))) ++fraction;
      has_fraction_digits = fraction > pos + 1;
      if (has_int || has_fraction_digits) pos = fraction;  // "1.", ".5", "1.5"; not "."
    }
    if (!has_int && !has_fraction_digits) return std::u32string::npos;
    // An exponent only when complete: "1e5", "2.5E-3"; "1e" is the INT "1" and then a stray "e".
    if (at(pos) == U'e' || at(pos) == U'E') {
      size_t exponent = pos + 1;
      if (at(exponent) == U'+' || at(exponent) == U'-') ++exponent;
      const size_t digits = exponent;
      while (is_digit(at(exponent))) ++exponent;
      if (exponent > digits) pos = exponent;
    }
    number = text_.substr(start, pos - start);
    while (pos < text_.size() && is_python_space(text_[pos])) ++pos;
    return at(pos) == U']' ? pos + 1 : std::u32string::npos;
  }

  const std::u32string& text_;
  std::unordered_map<size_t, Bracketed> memo_;
};

// Python's float() of a NUMBER ("1e999" is inf, "1e-999" is 0).
double number_value(const std::string& number) {
  const char* first = number.data() + (number[0] == '+' ? 1 : 0);
  double value = 0.0;
  const auto parsed = std::from_chars(first, number.data() + number.size(), value);
  if (parsed.ec == std::errc::result_out_of_range) {
    // from_chars leaves the value unset: decide between overflow and underflow by the exponent.
    const size_t e = number.find_first_of("eE");
    const bool negative_exponent = e != std::string::npos && number.compare(e + 1, 1, "-") == 0;
    const bool negative = number[0] == '-';
    value = negative_exponent ? 0.0 : (negative ? -HUGE_VAL : HUGE_VAL);
  }
  return value;
}

struct StepRules {
  int steps;          // the steps the schedule covers
  int step_offset;    // subtracted from a step number
  double fraction_offset;  // subtracted from a fraction before it is scaled by `steps`
};

// A1111's CollectSteps: each edit's `when` as min(steps, int(value)), and every step where the text
// may change (every step at all where an alternation appears, even one never shown).
void resolve_steps(Sequence& sequence, const StepRules& rules, std::set<int>& change_steps) {
  for (Node& node : sequence) {
    if (node.kind == Node::kText) continue;
    for (Sequence& part : node.parts) resolve_steps(part, rules, change_steps);
    if (node.kind == Node::kAlternation) {
      for (int step = 1; step <= rules.steps; ++step) change_steps.insert(step);
      continue;
    }
    const std::string number = u32_to_utf8(node.when_text);
    double value = number_value(number);
    if (number.find('.') != std::string::npos)
      value = (value - rules.fraction_offset) * rules.steps;
    else
      value -= rules.step_offset;
    if (!std::isfinite(value))
      throw InvalidParameter("prompt", "the prompt-editing step '" + number + "' is too large");
    // int() truncates toward zero; anything at or past the end is the end.
    node.when = value >= rules.steps ? rules.steps : static_cast<int64_t>(std::trunc(std::max(value, -1e18)));
    if (node.when >= 1) change_steps.insert(static_cast<int>(node.when));
  }
}

void render_at(const Sequence& sequence, int step, std::u32string& out) {
  for (const Node& node : sequence) {
    if (node.kind == Node::kText)
      out += node.text;
    else if (node.kind == Node::kEdit)
      render_at(node.parts[step <= node.when ? 0 : 1], step, out);
    else
      render_at(node.parts[static_cast<size_t>(step - 1) % node.parts.size()], step, out);
  }
}

}  // namespace

std::vector<ScheduledPrompt> prompt_schedule(const std::string& prompt, int steps, std::optional<int> hires_steps) {
  if (steps < 1) throw InvalidParameter("steps", "must be at least 1, got " + std::to_string(steps));
  if (hires_steps && *hires_steps < 1)
    throw InvalidParameter("hires_steps", "must be at least 1, got " + std::to_string(*hires_steps));
  const StepRules rules = hires_steps ? StepRules{*hires_steps, steps, 1.0} : StepRules{steps, 0, 0.0};

  const std::u32string text = utf8_to_u32(prompt);
  std::optional<Sequence> parsed = ScheduleParser(text).parse();
  if (!parsed) return {{rules.steps, prompt}};

  std::set<int> change_steps{rules.steps};
  resolve_steps(*parsed, rules, change_steps);
  std::vector<ScheduledPrompt> schedule;
  for (int step : change_steps) {
    std::u32string at_step;
    render_at(*parsed, step, at_step);
    schedule.push_back({step, u32_to_utf8(at_step)});
  }
  return schedule;
}

}  // namespace diffuse::text
