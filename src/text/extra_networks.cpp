#include "text/extra_networks.h"

#include <cctype>

namespace diffuse::text {

namespace {

bool is_word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

}  // namespace

PromptWithoutTags take_extra_network_tags(const std::string& prompt) {
  PromptWithoutTags out;
  size_t i = 0;
  while (i < prompt.size()) {
    if (prompt[i] == '<') {
      // <kind:arguments>: kind one or more word characters, arguments one or more characters but '>'.
      size_t colon = i + 1;
      while (colon < prompt.size() && is_word_char(prompt[colon])) ++colon;
      const size_t close = colon < prompt.size() ? prompt.find('>', colon) : std::string::npos;
      if (colon > i + 1 && colon < prompt.size() && prompt[colon] == ':' && close != std::string::npos &&
          close > colon + 1) {
        ExtraNetworkTag tag;
        tag.kind = prompt.substr(i + 1, colon - i - 1);
        const auto arguments = prompt.substr(colon + 1, close - colon - 1);
        size_t start = 0;
        while (true) {
          const auto end = arguments.find(':', start);
          const auto item = arguments.substr(start, end == std::string::npos ? std::string::npos : end - start);
          const auto equals = item.find('=');
          if (equals == std::string::npos) tag.positional.push_back(item);
          else tag.named[item.substr(0, equals)] = item.substr(equals + 1);
          if (end == std::string::npos) break;
          start = end + 1;
        }
        out.tags.push_back(std::move(tag));
        i = close + 1;
        continue;
      }
    }
    out.text += prompt[i++];
  }
  return out;
}

}  // namespace diffuse::text
