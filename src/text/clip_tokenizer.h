// CLIP's byte-level BPE tokenizer: the same ids as openai/CLIP's simple_tokenizer.py (and, for prompts
// without HTML entities, as transformers' CLIPTokenizer that diffusers pipelines use).
//
// encode(): clip_clean_text() (ftfy subset, html.unescape x2, whitespace collapse, lower-case), split with
// CLIP's pattern  <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// (case-insensitive), each piece's UTF-8 bytes mapped through GPT-2's bytes_to_unicode table, merged by
// BPE rank with "</w>" on the last symbol. BPE results are cached per piece, shared by copies.
//
// Added tokens (transformers' slow-tokenizer behaviour, PreTrainedTokenizer.tokenize): before any of
// that, the raw text is split on the tokenizer's added tokens with transformers' tokens_trie (longest
// match first, left to right, case-sensitive, on the text as typed); each match is its token's id, and
// only the text between matches is cleaned, split and BPE'd. The added tokens are the special tokens
// (bos, eos, unk, pad, ... from tokenizer_config.json / special_tokens_map.json, else CLIP's defaults)
// and those the files list with ids (added_tokens_decoder, added_tokens.json, tokenizer.json). So an SD
// 2.x tokenizer (pad_token "!") reads "8k!" as 8</w> k</w> then "!" (id 0), where SD 1.x gives !</w>.
// Whitespace beside a match stays with the text around it (which cleaning then strips); AddedToken's
// rstrip / lstrip / single_word act as in transformers; `normalized` only matters to tokenizers with
// do_lower_case, which CLIP's has not. Typed with other case ("<|EndOfText|>"), the two CLIP special
// tokens are still found after lower-casing, by CLIP's pattern and BPE cache.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "text/added_tokens.h"

namespace diffuse::text {

namespace detail {
struct ClipVocabulary;  // defined in clip_tokenizer.cpp
struct ClipWordCache;
struct ClipAddedTokens;  // defined in clip_tokenizer.cpp
}  // namespace detail

class ClipTokenizer {
 public:
  static constexpr int kDefaultMaxLength = 77;

  using AddedToken = text::AddedToken;

  // `path` is one of:
  //  - a folder with vocab.json + merges.txt (a diffusers `tokenizer/` folder); its tokenizer_config.json
  //    (else special_tokens_map.json) supplies pad_token, the other special tokens and model_max_length
  //    when present; added_tokens_decoder (else added_tokens.json and tokenizer.json) the added tokens;
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

  // Vocabulary entry of an id, in byte-unicode form ("cat</w>", "Ġ" for a space byte); for an added
  // token outside the vocabulary, its content.
  std::string token_text(int64_t id) const;
  // The id of a token: an added token's first (as transformers' convert_tokens_to_ids), else the
  // vocabulary's.
  std::optional<int64_t> token_id(const std::string& token_text) const;
  // Ids back to text as CLIP decodes them: bytes restored, "</w>" read as a space (an added token
  // outside the vocabulary as its content).
  std::string decode(const std::vector<int64_t>& ids) const;

  int64_t start_id() const;
  int64_t end_id() const;
  int64_t pad_id() const { return pad_id_; }
  int max_length() const { return max_length_; }
  int64_t vocab_size() const;  // one past the largest id, added tokens included
  // The tokens matched whole in the text, in the order transformers adds them (listed ones, then the
  // special tokens not among them); none is matched when tokenizer_config.json sets split_special_tokens.
  const std::vector<AddedToken>& added_tokens() const;
  // The file or folder the tokenizer was read from.
  const std::filesystem::path& source() const;

  // SD 1.x pads with <|endoftext|>, SD 2.x / OpenCLIP with "!" (id 0); a single-file checkpoint has no
  // tokenizer config to say which, so the caller chooses. Either makes the tokenizer what transformers
  // builds with that pad_token: the pad token becomes an added token, matched whole in the text (and
  // the previous pad token stops being one unless it has another role or is listed in the files).
  void set_pad_token(const std::string& token_text);  // throws diffuse::Error if it has no id
  void set_pad_id(int64_t id);                        // the token of that id; throws if there is none

 private:
  ClipTokenizer(std::shared_ptr<const detail::ClipVocabulary> vocab,
                std::shared_ptr<const detail::ClipAddedTokens> added, int64_t pad_id, int max_length);
  // CLIPTokenizer._tokenize: cleans one stretch of text between added tokens, splits it and appends
  // the BPE ids of its pieces.
  void append_text_ids(const std::string& text, std::vector<int64_t>& ids) const;
  // Appends the ids of one pre-token (already in byte-unicode form), through the cache.
  void append_bpe_ids(const std::string& piece, std::vector<int64_t>& ids) const;
  // Rebuilds the added tokens with `token_text` as the pad token.
  void use_pad_token(const std::string& token_text, int64_t id);

  std::shared_ptr<const detail::ClipVocabulary> vocab_;
  std::shared_ptr<const detail::ClipAddedTokens> added_;
  std::shared_ptr<detail::ClipWordCache> cache_;
  int64_t pad_id_;
  int max_length_;
};

}  // namespace diffuse::text
