#pragma once
// AUTOMATIC1111's extra-network tags: `<lora:name:0.8>` in a prompt asks for a network rather than
// being words. They are taken out of the text (modules/extra_networks.py: `<(\w+):([^>]+)>`, the
// arguments split at ':', `key=value` ones named) before anything else reads the prompt.
#include <map>
#include <string>
#include <vector>

namespace diffuse::text {

struct ExtraNetworkTag {
  std::string kind;                         // "lora", "hypernet", ...
  std::vector<std::string> positional;      // the name first
  std::map<std::string, std::string> named; // te=0.5, unet=1
};

struct PromptWithoutTags {
  std::string text;  // the prompt with every tag removed (the spaces around it stay, as A1111's)
  std::vector<ExtraNetworkTag> tags;
};

PromptWithoutTags take_extra_network_tags(const std::string& prompt);

}  // namespace diffuse::text
