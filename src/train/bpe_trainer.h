// Learning a byte-level BPE vocabulary from captions, written in CLIP's format (vocab.json +
// merges.txt) so that text/clip_tokenizer.h reads it like openai's.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace diffuse::train {

struct BpeVocabulary {
  std::vector<std::string> tokens;                           // index = id, CLIP's order
  std::vector<std::pair<std::string, std::string>> merges;  // rank order
};

// Merges the most frequent adjacent pair (ties: the smaller pair, so the result is fixed) until
// `max_merges` or no pair is left. Words are split as CLIP splits them (letters, single digits,
// other symbols), lower-cased, with "</w>" on each word's last symbol. Ids: the 256 byte
// characters, the same with "</w>", one per merge, then <|startoftext|> and <|endoftext|>.
BpeVocabulary train_bpe(const std::vector<std::string>& captions, int max_merges);

// vocab.json, merges.txt and a tokenizer_config.json (pad with <|endoftext|> as SD 1.x,
// model_max_length) into `folder`.
void write_clip_tokenizer(const BpeVocabulary& vocabulary, int max_length, const std::filesystem::path& folder);

}  // namespace diffuse::train
