// AUTOMATIC1111's long prompts (modules/sd_hijack_clip.py, tokenize_line): a prompt of any length
// becomes chunks of 75 tokens, each encoded on its own (start + 75 + end, 77 positions) and the
// encodings concatenated, so nothing past token 75 is cut off as CLIP's 77-token window would.
//
// A chunk that fills up part-way through a comma-separated list moves the words after its last comma
// (at most `comma_backtrack` tokens back) into the next chunk, so a phrase stays together; BREAK (the
// run parse_prompt_attention gives it outside brackets) ends the chunk at once. Each token carries
// the weight of its run, for the encoder output to be scaled by (1.0 on start, end and padding).
// Textual-inversion embeddings are found by the token ids of their names and take as many positions
// as they have vectors, never split across chunks.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "text/clip_tokenizer.h"
#include "text/prompt_attention.h"

namespace diffuse::text {

// An embedding as the chunker sees it: the ids its name tokenizes to (tokenize(name), as A1111 finds
// it in a prompt) and how many vectors replace them.
struct EmbeddingName {
  std::string name;
  std::vector<int64_t> name_ids;
  int vectors = 1;
};

// Where an embedding's vectors go: positions [position, position + vectors) of the chunk's tokens
// (the start token is position 0), which hold placeholder id 0.
struct EmbeddingPlacement {
  int position = 0;
  int embedding = 0;  // index into the list given to chunk_prompt
};

struct PromptChunk {
  std::vector<int64_t> tokens;      // chunk_length + 2: start, tokens, padding with the end id, end
  std::vector<double> multipliers;  // one per token
  std::vector<EmbeddingPlacement> embeddings;
};

struct ChunkedPrompt {
  std::vector<PromptChunk> chunks;  // at least one
  // Tokens the prompt uses, as A1111 counts them for its "75/150" display: full chunks count 75
  // each, the last its own tokens.
  int token_count = 0;
  // The parse the chunks came from.
  std::vector<WeightedText> runs;
};

struct ChunkOptions {
  int chunk_length = 75;
  int comma_backtrack = 20;  // A1111's comma_padding_backtrack; 0 turns it off
};

// AUTOMATIC1111's 75 tokens, or fewer where the tokenizer holds fewer positions (the built-in model
// has 32): every chunk fills the encoder's whole context either way.
ChunkOptions chunk_options_for(const ClipTokenizer& tokenizer);

// Throws diffuse::InvalidParameter("prompt", ...) where parse_prompt_attention does.
ChunkedPrompt chunk_prompt(const ClipTokenizer& tokenizer, const std::string& prompt,
                           const std::vector<EmbeddingName>& embeddings = {}, const ChunkOptions& options = {});

// A chunk's ids as the text encoder reads them: as the chunk holds them, except that everything after
// the first end token is `pad_id` (SD 2.x and SDXL's second tokenizer pad with "!", id 0, as
// A1111 and diffusers both give them).
std::vector<int64_t> encoder_ids(const PromptChunk& chunk, int64_t end_id, int64_t pad_id);

}  // namespace diffuse::text
