// AUTOMATIC1111's prompt editing and alternation (modules/prompt_parser.py,
// get_learned_conditioning_prompt_schedules): which prompt text the model sees at each sampling step.
//
//   [from:to:when]   "from" until step `when`, then "to"      [to:when]  nothing, then "to"
//   [from::when]     "from", then nothing                     [a|b|c]    a, b, c, a, ... one per step
//
// `when` with a "." is a fraction of the steps (0.25), without one a step number (5); brackets nest.
// A1111 reads the prompt with a lark grammar; this is a hand-written parser that accepts the same
// prompts and reads them the same way: brackets that do not form one of these (or "(...)", "(...:...)",
// "[...]") are plain text, and a prompt the grammar rejects outright (a "|" outside any alternation,
// a "\" at the very end) is used unchanged at every step, as A1111 does.
//
// The emphasis syntax and escapes are left in the text, for parse_prompt_attention() to read afterwards.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace diffuse::text {

struct ScheduledPrompt {
  int end_at_step = 0;  // this text is used for steps up to and including this one (counted from 1)
  std::string text;

  bool operator==(const ScheduledPrompt& other) const {
    return end_at_step == other.end_at_step && text == other.text;
  }
};

// The schedule for `steps` sampling steps: entries in increasing end_at_step, the last one at `steps`.
// With `hires_steps` (the second pass of a hires fix), A1111's hires reading: the schedule covers the
// `hires_steps` steps, a fraction counts from 1.0 (1.5 is half-way through the second pass) and a step
// number from `steps` (the first pass).
// Throws diffuse::InvalidParameter: "steps" / "hires_steps" below 1; "prompt" for a `when` too large to
// be a step (A1111 raises OverflowError) or brackets nested beyond kMaxScheduleNesting.
std::vector<ScheduledPrompt> prompt_schedule(const std::string& prompt, int steps,
                                             std::optional<int> hires_steps = std::nullopt);

// The parser recurses once per bracket level; deeper prompts are refused rather than risk the stack.
constexpr int kMaxScheduleNesting = 200;

}  // namespace diffuse::text
