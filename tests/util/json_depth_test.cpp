// Regressions from fuzz_json_config (docs/fuzzing.md): deeply nested JSON overflowed the stack in
// parse_json (restore_infinities recursed once per level).
#include "util/json.h"

#include <gtest/gtest.h>

#include <string>

#include "util/error.h"

namespace diffuse {
namespace {

std::string nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST(JsonDepth, DeepNestingIsRefusedNotAStackOverflow) {
  try {
    parse_json(nested(200000), "deep.json");
    FAIL() << "expected diffuse::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("deep.json: malformed JSON (nested deeper than 256 levels)"), std::string::npos)
        << e.what();
  }
}

TEST(JsonDepth, NestingUpToTheLimitParses) {
  EXPECT_TRUE(parse_json(nested(kMaxJsonDepth), "ok.json").is_array());
  EXPECT_FALSE(json_nests_deeper_than(nested(kMaxJsonDepth)));
  EXPECT_TRUE(json_nests_deeper_than(nested(kMaxJsonDepth + 1)));
}

TEST(JsonDepth, BracketsInsideStringsDoNotCount) {
  const std::string text = "{\"a\": \"" + std::string(1000, '[') + "\\\"" + std::string(1000, '{') + "\"}";
  EXPECT_FALSE(json_nests_deeper_than(text));
  EXPECT_EQ(parse_json(text, "s.json").at("a").get<std::string>().size(), 2001u);
}

}  // namespace
}  // namespace diffuse
