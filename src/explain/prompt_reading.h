#pragma once
// `diffuse tokens` for a prompt in AUTOMATIC1111's language: which text each step reads
// ([from:to:when], [a|b]), the extra-network tags taken out, and every chunk's tokens with their
// weights and embedding positions, as the text encoder will get them.
#include <functional>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "text/clip_tokenizer.h"
#include "text/prompt_chunks.h"

namespace diffuse::explain {

// A prompt's text -> its chunks (the model's chunk_prompt, with its embeddings, or the tokenizer's).
using PromptChunker = std::function<text::ChunkedPrompt(const std::string&)>;

// Whether reading `prompt` this way differs from plain tokenization: weights, edits or alternation,
// BREAK, tags, embeddings or more than one chunk.
bool uses_prompt_language(const std::string& prompt, int steps, const PromptChunker& chunk);

// The reading over `steps` sampling steps; `embeddings` in the order the chunker numbers them.
// Throws diffuse::InvalidParameter("prompt") where
// generation would refuse the prompt.
std::string describe_prompt_reading(const text::ClipTokenizer& tokenizer, const std::string& prompt, int steps,
                                    const PromptChunker& chunk, const std::vector<text::EmbeddingName>& embeddings = {});

// The same reading as data, for scripts (`diffuse tokens --json`):
//   {"prompt", "steps", "extra_networks": [{"kind", "positional", "named"}],
//    "texts": [{"text", "steps": [{"from", "to"}], "pieces": [{"text", "weight"}], "token_count",
//               "chunks": [{"ids", "tokens", "weights", "embeddings": [{"position", "name", "vectors"}]}]}]}
// "texts" holds each text the schedule reads once, with the step ranges (from 1, inclusive) it is read
// at; "pieces" are AUTOMATIC1111's parse (parse_prompt_attention); each chunk's "ids" and "weights"
// cover the encoder's whole context (start, tokens, padding, end). Throws as describe_prompt_reading.
nlohmann::json prompt_reading_json(const text::ClipTokenizer& tokenizer, const std::string& prompt, int steps,
                                   const PromptChunker& chunk, const std::vector<text::EmbeddingName>& embeddings = {});

}  // namespace diffuse::explain
