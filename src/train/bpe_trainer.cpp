#include "train/bpe_trainer.h"

#include <cctype>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace diffuse::train {

namespace fs = std::filesystem;

namespace {

std::string utf8(uint32_t code) {
  std::string out;
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else if (code < 0x800) {
    out += static_cast<char>(0xC0 | (code >> 6));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else {
    out += static_cast<char>(0xE0 | (code >> 12));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  }
  return out;
}

// GPT-2's bytes_to_unicode(), in its own order: visible bytes keep their code point, the rest
// map to 256, 257, ... That order is also the first 256 ids of CLIP's vocabulary.
std::vector<std::pair<int, std::string>> byte_characters() {
  std::vector<std::pair<int, std::string>> table;
  std::vector<bool> visible(256, false);
  for (int b = '!'; b <= '~'; ++b) visible[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) visible[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) visible[b] = true;
  for (int b = 0; b < 256; ++b) {
    if (visible[b]) table.emplace_back(b, utf8(b));
  }
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    if (!visible[b]) table.emplace_back(b, utf8(256 + extra++));
  }
  return table;
}

// CLIP's pre-tokenizer, close enough for learning merges: runs of letters (ASCII or any
// multi-byte UTF-8), single digits, runs of other non-space symbols. A piece split differently
// at encode time still encodes, through the byte symbols every vocabulary holds.
std::vector<std::string> split_words(const std::string& caption) {
  std::vector<std::string> words;
  std::string current;
  int kind = 0;  // 0 none, 1 letters, 2 symbols
  const auto flush = [&] {
    if (!current.empty()) words.push_back(current);
    current.clear();
    kind = 0;
  };
  for (unsigned char c : caption) {
    const unsigned char lower = static_cast<unsigned char>(std::tolower(c));
    if (std::isspace(c)) {
      flush();
    } else if (std::isdigit(c)) {
      flush();
      words.emplace_back(1, static_cast<char>(c));
    } else {
      const int k = (std::isalpha(c) || c >= 0x80) ? 1 : 2;
      if (k != kind) flush();
      kind = k;
      current += static_cast<char>(lower);
    }
  }
  flush();
  return words;
}

}  // namespace

BpeVocabulary train_bpe(const std::vector<std::string>& captions, int max_merges) {
  const auto bytes = byte_characters();
  std::vector<std::string> byte_symbol(256);
  for (const auto& [b, symbol] : bytes) byte_symbol[b] = symbol;

  std::map<std::string, int> counts;
  for (const auto& caption : captions) {
    for (const auto& word : split_words(caption)) ++counts[word];
  }
  std::vector<std::pair<std::vector<std::string>, int>> words;
  for (const auto& [word, count] : counts) {
    std::vector<std::string> symbols;
    for (unsigned char c : word) symbols.push_back(byte_symbol[c]);
    symbols.back() += "</w>";
    words.emplace_back(std::move(symbols), count);
  }

  BpeVocabulary vocabulary;
  for (const auto& entry : bytes) vocabulary.tokens.push_back(entry.second);
  for (const auto& entry : bytes) vocabulary.tokens.push_back(entry.second + "</w>");
  for (int m = 0; m < max_merges; ++m) {
    std::map<std::pair<std::string, std::string>, int> pairs;
    for (const auto& [symbols, count] : words) {
      for (size_t i = 0; i + 1 < symbols.size(); ++i) pairs[{symbols[i], symbols[i + 1]}] += count;
    }
    if (pairs.empty()) break;
    auto best = pairs.begin();
    for (auto it = pairs.begin(); it != pairs.end(); ++it) {
      if (it->second > best->second) best = it;  // strict: the first (smallest) pair wins ties
    }
    const auto [first, second] = best->first;
    vocabulary.merges.emplace_back(first, second);
    vocabulary.tokens.push_back(first + second);
    for (auto& [symbols, count] : words) {
      std::vector<std::string> merged;
      for (size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == first && symbols[i + 1] == second) {
          merged.push_back(first + second);
          ++i;
        } else {
          merged.push_back(symbols[i]);
        }
      }
      symbols = std::move(merged);
    }
  }
  vocabulary.tokens.push_back("<|startoftext|>");
  vocabulary.tokens.push_back("<|endoftext|>");
  return vocabulary;
}

void write_clip_tokenizer(const BpeVocabulary& vocabulary, int max_length, const fs::path& folder) {
  fs::create_directories(folder);
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (size_t id = 0; id < vocabulary.tokens.size(); ++id) vocab[vocabulary.tokens[id]] = id;
  const auto write = [&](const char* name, const std::string& text) {
    std::ofstream out(folder / name, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw Error((folder / name).string() + ": cannot write");
  };
  write("vocab.json", vocab.dump());
  std::string merges = "#version: 0.2\n";
  for (const auto& [first, second] : vocabulary.merges) merges += first + " " + second + "\n";
  write("merges.txt", merges);
  const nlohmann::ordered_json config{{"tokenizer_class", "CLIPTokenizer"},
                                      {"bos_token", "<|startoftext|>"},
                                      {"eos_token", "<|endoftext|>"},
                                      {"unk_token", "<|endoftext|>"},
                                      {"pad_token", "<|endoftext|>"},
                                      {"model_max_length", max_length}};
  write("tokenizer_config.json", config.dump(2) + "\n");
}

}  // namespace diffuse::train
