// Added tokens: tokens a tokenizer matches whole in the text before BPE (transformers' AddedToken),
// as its files list them and as the tokenizer holds them, and the trie that finds them.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace diffuse::text {

// One added token with transformers' AddedToken fields and defaults. `id`: as the files give it
// (added_tokens_decoder, added_tokens.json, tokenizer.json); a special-token role names a token
// without one, which the tokenizer then looks up in its vocabulary. Every token a tokenizer holds
// has an id.
struct AddedToken {
  std::string content;
  std::optional<int64_t> id;
  bool single_word = false;  // a match with no space beside it goes back into the text there
  bool lstrip = false;       // eats the whitespace on its left
  bool rstrip = false;       // eats the whitespace on its right
  bool normalized = true;
  bool special = false;
};

// transformers' Trie (tokenization_utils.py) over code points, ported step for step so that its
// split gives the same pieces: the longest match first, left to right.
class AddedTokenTrie {
 public:
  void add(const std::u32string& word);
  // Trie.split + cut_text: the text cut before and after every match.
  std::vector<std::u32string> split(const std::u32string& text) const;

 private:
  struct Node {
    std::map<char32_t, int> children;
    bool end = false;
  };
  int child(int node, char32_t c) const {
    const auto& children = nodes_[static_cast<size_t>(node)].children;
    auto it = children.find(c);
    return it == children.end() ? -1 : it->second;
  }
  bool is_end(int node) const { return nodes_[static_cast<size_t>(node)].end; }

  std::vector<Node> nodes_ = std::vector<Node>(1);
};

}  // namespace diffuse::text
