// Reading CLIP's BPE vocabulary in its two published forms (used by ClipTokenizer::from_path).
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

namespace diffuse::text::detail {

inline constexpr const char* kStartOfText = "<|startoftext|>";
inline constexpr const char* kEndOfText = "<|endoftext|>";

struct ClipVocabulary {
  std::filesystem::path source;      // what the caller named
  std::filesystem::path vocab_file;  // where the token -> id table came from (named in lookup errors)
  std::unordered_map<std::string, int64_t> encoder;
  std::unordered_map<int64_t, std::string> decoder;
  std::unordered_map<std::string, int> merge_ranks;  // "first second" -> rank (lower merges first)
  // GPT-2's bytes_to_unicode(): each byte as the UTF-8 of a visible, non-space character.
  std::array<std::string, 256> byte_encoder;
  std::unordered_map<std::string, uint8_t> byte_decoder;
  int64_t start_id = 0;
  int64_t end_id = 0;
  int64_t max_id = 0;
};

// A diffusers / transformers tokenizer: vocab.json (token -> id) and merges.txt ("#version" line, then
// one "first second" pair per line, in rank order).
std::shared_ptr<ClipVocabulary> load_vocab_json_and_merges(const std::filesystem::path& vocab_json,
                                                           const std::filesystem::path& merges_txt,
                                                           const std::filesystem::path& source);

// openai/CLIP's bpe_simple_vocab_16e6.txt.gz: merges are lines 1..48894; the vocabulary is the 256 byte
// characters, the same with "</w>", each merge joined, then <|startoftext|> and <|endoftext|>.
std::shared_ptr<ClipVocabulary> load_clip_bpe_gz(const std::filesystem::path& gz_path);

struct TokenizerSettings {
  std::optional<std::string> pad_token;
  std::filesystem::path pad_token_file;  // the config file that named it
  std::optional<int> max_length;
};

// pad_token and model_max_length from a tokenizer folder's tokenizer_config.json, with
// special_tokens_map.json as the fallback for pad_token (transformers' precedence). Missing files are fine.
TokenizerSettings read_tokenizer_settings(const std::filesystem::path& folder);

}  // namespace diffuse::text::detail
