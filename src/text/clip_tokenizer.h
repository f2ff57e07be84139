// CLIP's byte-level BPE tokenizer: the same ids as openai/CLIP's simple_tokenizer.py (and, for prompts
// without HTML entities, as transformers' CLIPTokenizer that diffusers pipelines use).
//
// encode(): clip_clean_text() (ftfy subset, html.unescape x2, whitespace collapse, lower-case), split with
// CLIP's pattern  <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// (case-insensitive), each piece's UTF-8 bytes mapped through GPT-2's bytes_to_unicode table, merged by
// BPE rank with "</w>" on the last symbol. BPE results are cached per piece, shared by copies.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace diffuse::text {

namespace detail {
struct ClipVocabulary;  // defined in clip_tokenizer.cpp
struct ClipWordCache;
}  // namespace detail

class ClipTokenizer {
 public:
  static constexpr int kDefaultMaxLength = 77;

  // `path` is one of:
  //  - a folder with vocab.json + merges.txt (a diffusers `tokenizer/` folder); its tokenizer_config.json
  //    (else special_tokens_map.json) supplies pad_token and model_max_length when present;
  //  - CLIP's bpe_simple_vocab_16e6.txt.gz (merges = lines 1..48894; the vocabulary is built from them);
  //  - a vocab.json or merges.txt file, read with its sibling.
  // Throws diffuse::Error naming the missing or malformed file.
  static ClipTokenizer from_path(const std::filesystem::path& path);

  // start, tokens, end: unpadded and untruncated (CLIP's tokenizer.encode with the special tokens).
  std::vector<int64_t> encode(const std::string& text) const;
  // The tokens alone, without start and end (for prompt chunking).
  std::vector<int64_t> tokenize(const std::string& text) const;
  // Exactly max_length() ids: start, at most max_length()-2 tokens, end, then pad_id(): the text encoder's
  // input, as tokenizer(text, padding="max_length", truncation=True) gives it.
  std::vector<int64_t> encode_padded(const std::string& text) const;

  // Vocabulary entry of an id, in byte-unicode form ("cat</w>", "Ġ" for a space byte).
  std::string token_text(int64_t id) const;
  std::optional<int64_t> token_id(const std::string& token_text) const;
  // Ids back to text as CLIP decodes them: bytes restored, "</w>" read as a space.
  std::string decode(const std::vector<int64_t>& ids) const;

  int64_t start_id() const;
  int64_t end_id() const;
  int64_t pad_id() const { return pad_id_; }
  int max_length() const { return max_length_; }
  int64_t vocab_size() const;  // one past the largest id
  // The file or folder the tokenizer was read from.
  const std::filesystem::path& source() const;

  // SD 1.x pads with <|endoftext|>, SD 2.x / OpenCLIP with "!" (id 0); a single-file checkpoint has no
  // tokenizer config to say which, so the caller chooses.
  void set_pad_token(const std::string& token_text);  // throws diffuse::Error if not in the vocabulary
  void set_pad_id(int64_t id);                        // throws diffuse::Error if out of range

 private:
  ClipTokenizer(std::shared_ptr<const detail::ClipVocabulary> vocab, int64_t pad_id, int max_length);
  // Appends the ids of one pre-token (already in byte-unicode form), through the cache.
  void append_bpe_ids(const std::string& piece, std::vector<int64_t>& ids) const;

  std::shared_ptr<const detail::ClipVocabulary> vocab_;
  std::shared_ptr<detail::ClipWordCache> cache_;
  int64_t pad_id_;
  int max_length_;
};

}  // namespace diffuse::text
