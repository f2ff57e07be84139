// The added-token trie on its own, on the cases transformers' own Trie tests and docstring use.
#include "text/added_tokens.h"

#include <gtest/gtest.h>

namespace diffuse::text {
namespace {

using Pieces = std::vector<std::u32string>;

Pieces split_with(std::initializer_list<std::u32string> words, const std::u32string& text) {
  AddedTokenTrie trie;
  for (const auto& word : words) trie.add(word);
  return trie.split(text);
}

TEST(AddedTokenTrie, CutsAroundEveryMatch) {
  EXPECT_EQ(split_with({}, U"[CLS] This is a extra_id_100"), (Pieces{U"[CLS] This is a extra_id_100"}));
  EXPECT_EQ(split_with({U"[CLS]", U"extra_id_1", U"extra_id_100"}, U"[CLS] This is a extra_id_100"),
            (Pieces{U"[CLS]", U" This is a ", U"extra_id_100"}));
  EXPECT_EQ(split_with({U"A", U"P", U"[SPECIAL]"}, U"This is something [SPECIAL]"),
            (Pieces{U"This is something ", U"[SPECIAL]"}));
}

TEST(AddedTokenTrie, TakesTheLongestMatchFirst) {
  EXPECT_EQ(split_with({U"TOKEN]", U"[SPECIAL_TOKEN]"}, U"This is something [SPECIAL_TOKEN]"),
            (Pieces{U"This is something ", U"[SPECIAL_TOKEN]"}));
  EXPECT_EQ(split_with({U"ABC", U"B", U"CD"}, U"ABCD"), (Pieces{U"ABC", U"D"}));
  EXPECT_EQ(split_with({U"AB", U"B", U"C"}, U"ABC"), (Pieces{U"AB", U"C"}));
}

TEST(AddedTokenTrie, WorksOnCodePoints) {
  EXPECT_EQ(split_with({U"友達"}, U"Hello 友達!"), (Pieces{U"Hello ", U"友達", U"!"}));
  EXPECT_EQ(split_with({U""}, U"abc"), (Pieces{U"abc"}));  // an empty word is never a match
}

}  // namespace
}  // namespace diffuse::text
