#include "explain/prompt_reading.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "text/extra_networks.h"
#include "text/prompt_schedule.h"

namespace diffuse::explain {

namespace {

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

bool chunks_are_plain(const text::ChunkedPrompt& chunked) {
  if (chunked.chunks.size() != 1 || !chunked.chunks[0].embeddings.empty()) return false;
  for (const double m : chunked.chunks[0].multipliers) {
    if (m != 1.0) return false;
  }
  return true;
}

void describe_chunks(std::string& out, const text::ClipTokenizer& tokenizer, const text::ChunkedPrompt& chunked,
                     const std::vector<text::EmbeddingName>& embeddings) {
  const int chunk_length = static_cast<int>(chunked.chunks[0].tokens.size()) - 2;
  out += "  " + std::to_string(chunked.token_count) + " tokens in " + std::to_string(chunked.chunks.size()) +
         (chunked.chunks.size() == 1 ? " chunk" : " chunks") + " of " + std::to_string(chunk_length) + "\n";
  for (size_t c = 0; c < chunked.chunks.size(); ++c) {
    const auto& chunk = chunked.chunks[c];
    // An embedding's positions show as one "<name: n vectors>".
    std::vector<std::string> embedding_at(chunk.tokens.size());
    std::vector<bool> covered(chunk.tokens.size());
    for (const auto& placement : chunk.embeddings) {
      const auto index = static_cast<size_t>(placement.embedding);
      const int vectors = index < embeddings.size() ? embeddings[index].vectors : 1;
      const auto name = index < embeddings.size() ? embeddings[index].name : "embedding " + std::to_string(index + 1);
      const auto at = static_cast<size_t>(placement.position);
      embedding_at[at] = "<" + name + (vectors == 1 ? ">" : ": " + std::to_string(vectors) + " vectors>");
      for (size_t i = at; i < at + static_cast<size_t>(vectors) && i < covered.size(); ++i) covered[i] = true;
    }
    out += "  chunk " + std::to_string(c + 1) + ":";
    // Runs of one weight on a line: "1.2: cat</w> sitting</w>"; start, end and padding left out.
    double weight = 0;
    bool open = false;
    for (size_t i = 1; i + 1 < chunk.tokens.size(); ++i) {
      if (covered[i] && embedding_at[i].empty()) continue;  // an embedding's later vectors
      if (chunk.tokens[i] == tokenizer.end_id() && !covered[i]) break;  // padding
      if (!open || chunk.multipliers[i] != weight) {
        weight = chunk.multipliers[i];
        out += "\n    " + number(weight) + ":";
        open = true;
      }
      out += " " + (embedding_at[i].empty() ? tokenizer.token_text(chunk.tokens[i]) : embedding_at[i]);
    }
    out += "\n";
  }
}

// Each text of the prompt's schedule once, with every step range it is read at, in the order they
// first come (alternation comes back to a text often).
std::vector<std::pair<std::string, std::vector<std::pair<int, int>>>> texts_by_step(const std::string& prompt,
                                                                                   int steps) {
  std::vector<std::pair<std::string, std::vector<std::pair<int, int>>>> texts;
  int first = 1;
  for (const auto& entry : text::prompt_schedule(prompt, steps)) {
    auto same = std::find_if(texts.begin(), texts.end(), [&](const auto& t) { return t.first == entry.text; });
    if (same == texts.end()) same = texts.insert(texts.end(), {entry.text, {}});
    same->second.push_back({first, entry.end_at_step});
    first = entry.end_at_step + 1;
  }
  return texts;
}

}  // namespace

bool uses_prompt_language(const std::string& prompt, int steps, const PromptChunker& chunk) {
  const auto taken = text::take_extra_network_tags(prompt);
  if (!taken.tags.empty()) return true;
  const auto schedule = text::prompt_schedule(taken.text, steps);
  return schedule.size() != 1 || schedule[0].text != taken.text || !chunks_are_plain(chunk(taken.text));
}

std::string describe_prompt_reading(const text::ClipTokenizer& tokenizer, const std::string& prompt, int steps,
                                    const PromptChunker& chunk, const std::vector<text::EmbeddingName>& embeddings) {
  const auto taken = text::take_extra_network_tags(prompt);
  std::string out;
  for (const auto& tag : taken.tags) {
    out += "extra network <" + tag.kind;
    for (const auto& item : tag.positional) out += ":" + item;
    for (const auto& [key, value] : tag.named) out += ":" + key + "=" + value;
    out += "> (taken out of the text)\n";
  }
  for (const auto& [text, ranges] : texts_by_step(taken.text, steps)) {
    std::string when;
    for (const auto& [from, to] : ranges) {
      when += (when.empty() ? "" : ", ") + std::to_string(from) + (from == to ? "" : "-" + std::to_string(to));
    }
    const bool one = ranges.size() == 1 && ranges[0].first == ranges[0].second;
    out += (one ? "step " : "steps ") + when + " of " + std::to_string(steps) + ": \"" + text + "\"\n";
    describe_chunks(out, tokenizer, chunk(text), embeddings);
  }
  return out;
}

nlohmann::json prompt_reading_json(const text::ClipTokenizer& tokenizer, const std::string& prompt, int steps,
                                   const PromptChunker& chunk, const std::vector<text::EmbeddingName>& embeddings) {
  using nlohmann::json;
  const auto taken = text::take_extra_network_tags(prompt);
  json reading = {{"prompt", prompt}, {"steps", steps}, {"extra_networks", json::array()}, {"texts", json::array()}};
  for (const auto& tag : taken.tags)
    reading["extra_networks"].push_back({{"kind", tag.kind}, {"positional", tag.positional}, {"named", tag.named}});
  for (const auto& [text, ranges] : texts_by_step(taken.text, steps)) {
    const auto chunked = chunk(text);
    json pieces = json::array(), chunks = json::array(), when = json::array();
    for (const auto& [from, to] : ranges) when.push_back({{"from", from}, {"to", to}});
    for (const auto& run : chunked.runs) pieces.push_back({{"text", run.text}, {"weight", run.weight}});
    for (const auto& c : chunked.chunks) {
      json placed = json::array(), tokens = json::array();
      for (const auto& placement : c.embeddings) {
        const auto index = static_cast<size_t>(placement.embedding);
        placed.push_back({{"position", placement.position},
                          {"name", index < embeddings.size() ? embeddings[index].name : ""},
                          {"vectors", index < embeddings.size() ? embeddings[index].vectors : 1}});
      }
      for (const auto id : c.tokens) tokens.push_back(tokenizer.token_text(id));
      chunks.push_back({{"ids", c.tokens}, {"tokens", tokens}, {"weights", c.multipliers}, {"embeddings", placed}});
    }
    reading["texts"].push_back({{"text", text},
                                {"steps", when},
                                {"pieces", pieces},
                                {"token_count", chunked.token_count},
                                {"chunks", chunks}});
  }
  return reading;
}

}  // namespace diffuse::explain
