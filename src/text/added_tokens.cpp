#include "text/added_tokens.h"

namespace diffuse::text {

void AddedTokenTrie::add(const std::u32string& word) {
  if (word.empty()) return;
  int node = 0;
  for (char32_t c : word) {
    int next = child(node, c);
    if (next < 0) {
      next = static_cast<int>(nodes_.size());
      nodes_[static_cast<size_t>(node)].children.emplace(c, next);
      nodes_.emplace_back();
    }
    node = next;
  }
  nodes_[static_cast<size_t>(node)].end = true;
}

std::vector<std::u32string> AddedTokenTrie::split(const std::u32string& text) const {
  // start -> trie node of each partial match (Python's OrderedDict: starts are inserted in order).
  std::map<size_t, int> states;
  std::vector<size_t> offsets{0};
  size_t skip = 0;
  for (size_t current = 0; current < text.size(); ++current) {
    if (skip && current < skip) continue;
    const char32_t current_char = text[current];
    std::vector<size_t> to_remove;
    bool reset = false;
    for (auto it = states.begin(); it != states.end(); ++it) {
      size_t start = it->first;
      const int node = it->second;
      if (is_end(node)) {
        // A match ended before `current`: look ahead, from every partial match that started no
        // later, for the longest one.
        size_t end = current;
        for (auto look = states.begin(); look != states.end(); ++look) {
          const size_t lookstart = look->first;
          int looknode = look->second;
          size_t lookahead = 0;
          if (lookstart > start) break;
          if (lookstart < start) {  // its node already took current_char
            lookahead = current + 1;
            end = current + 1;
          } else {
            lookahead = current;
            end = current;
          }
          if (is_end(looknode)) {
            start = lookstart;
            end = lookahead;
            skip = lookahead;
          }
          while (lookahead < text.size()) {
            const int next = child(looknode, text[lookahead]);
            if (next < 0) break;
            looknode = next;
            ++lookahead;
            if (is_end(looknode)) {
              start = lookstart;
              end = lookahead;
              skip = lookahead;
            }
          }
        }
        offsets.push_back(start);
        offsets.push_back(end);
        reset = true;
        break;
      }
      const int next = child(node, current_char);
      if (next >= 0) {
        it->second = next;
      } else {
        to_remove.push_back(start);
      }
    }
    if (reset) {
      states.clear();
    } else {
      for (size_t start : to_remove) states.erase(start);
    }
    if (current >= skip) {
      const int first = child(0, current_char);
      if (first >= 0) states[current] = first;
    }
  }
  for (const auto& [start, node] : states) {
    if (is_end(node)) {
      offsets.push_back(start);
      offsets.push_back(text.size());
      break;
    }
  }
  offsets.push_back(text.size());
  std::vector<std::u32string> pieces;
  size_t start = 0;
  for (size_t end : offsets) {
    if (start >= end) continue;  // zero-width cuts (start > end would be a Trie bug: skipped, as there)
    pieces.push_back(text.substr(start, end - start));
    start = end;
  }
  return pieces;
}

}  // namespace diffuse::text
