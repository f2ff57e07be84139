// Reading CLIP's BPE vocabulary in its two published forms (used by ClipTokenizer::from_path).
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "text/added_tokens.h"

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
  // The special-token roles the files name (bos_token, eos_token, unk_token, sep_token, pad_token,
  // cls_token, mask_token, in that order, then each of additional_special_tokens as
  // "additional_special_tokens"), each as the first of tokenizer_config.json / special_tokens_map.json
  // that gives it. Roles the files leave out are left out here too (CLIP's defaults are the caller's).
  std::vector<std::pair<std::string, AddedToken>> special_tokens;
  // Tokens with ids: tokenizer_config.json's added_tokens_decoder when it has one; otherwise (the
  // legacy layout) added_tokens.json's, then tokenizer.json's "added_tokens" (JSON objects in key order).
  std::vector<AddedToken> added_tokens;
  bool split_special_tokens = false;  // tokenizer_config.json: match no added token in the text
};

// The settings of a tokenizer folder: pad_token, model_max_length and the special tokens from
// tokenizer_config.json, with special_tokens_map.json as the fallback for each (read only when
// tokenizer_config.json has no added_tokens_decoder, as transformers does), and the added tokens.
// Missing files are fine; malformed ones throw diffuse::Error naming the file.
TokenizerSettings read_tokenizer_settings(const std::filesystem::path& folder);

}  // namespace diffuse::text::detail
