#include "text/prompt_chunks.h"

#include <algorithm>

#include "util/error.h"

namespace diffuse::text {
namespace {

class Chunker {
 public:
  Chunker(const ClipTokenizer& tokenizer, const ChunkOptions& options, ChunkedPrompt& out)
      : start_id_(tokenizer.start_id()), end_id_(tokenizer.end_id()), options_(options), out_(out) {}

  // The index of the embedding whose name starts at tokens[position], longest name first, or -1.
  static int embedding_at(const std::vector<int64_t>& tokens, size_t position,
                          const std::vector<EmbeddingName>& embeddings) {
    int best = -1;
    size_t best_length = 0;
    for (size_t i = 0; i < embeddings.size(); ++i) {
      const auto& ids = embeddings[i].name_ids;
      if (ids.empty() || ids.size() <= best_length || position + ids.size() > tokens.size()) continue;
      if (std::equal(ids.begin(), ids.end(), tokens.begin() + static_cast<std::ptrdiff_t>(position))) {
        best = static_cast<int>(i);
        best_length = ids.size();
      }
    }
    return best;
  }

  void add_run(const std::vector<int64_t>& tokens, double weight, int64_t comma_id,
               const std::vector<EmbeddingName>& embeddings) {
    const auto length = static_cast<size_t>(options_.chunk_length);
    size_t position = 0;
    while (position < tokens.size()) {
      const int64_t token = tokens[position];
      if (token == comma_id) {
        last_comma_ = static_cast<int>(chunk_.tokens.size());
      } else if (options_.comma_backtrack != 0 && chunk_.tokens.size() == length && last_comma_ != -1 &&
                 static_cast<int>(chunk_.tokens.size()) - last_comma_ <= options_.comma_backtrack) {
        // The words after the last comma move on to the next chunk.
        const auto split = static_cast<std::ptrdiff_t>(last_comma_ + 1);
        std::vector<int64_t> moved_tokens(chunk_.tokens.begin() + split, chunk_.tokens.end());
        std::vector<double> moved_multipliers(chunk_.multipliers.begin() + split, chunk_.multipliers.end());
        chunk_.tokens.resize(static_cast<size_t>(split));
        chunk_.multipliers.resize(static_cast<size_t>(split));
        next_chunk(false);
        chunk_.tokens = std::move(moved_tokens);
        chunk_.multipliers = std::move(moved_multipliers);
      }
      if (chunk_.tokens.size() == length) next_chunk(false);

      const int found = embedding_at(tokens, position, embeddings);
      if (found < 0) {
        chunk_.tokens.push_back(token);
        chunk_.multipliers.push_back(weight);
        ++position;
        continue;
      }
      const auto vectors = static_cast<size_t>(embeddings[static_cast<size_t>(found)].vectors);
      if (vectors > length) {
        throw InvalidParameter("prompt", "embedding '" + embeddings[static_cast<size_t>(found)].name + "' has " +
                                             std::to_string(vectors) + " vectors, more than a chunk's " +
                                             std::to_string(length) + " tokens");
      }
      if (chunk_.tokens.size() + vectors > length) next_chunk(false);
      // +1: the start token comes before the chunk's tokens.
      chunk_.embeddings.push_back({static_cast<int>(chunk_.tokens.size()) + 1, found});
      chunk_.tokens.insert(chunk_.tokens.end(), vectors, 0);
      chunk_.multipliers.insert(chunk_.multipliers.end(), vectors, weight);
      position += embeddings[static_cast<size_t>(found)].name_ids.size();
    }
  }

  void next_chunk(bool is_last) {
    const auto length = static_cast<size_t>(options_.chunk_length);
    out_.token_count += is_last ? static_cast<int>(chunk_.tokens.size()) : options_.chunk_length;
    if (chunk_.tokens.size() < length) {
      chunk_.multipliers.resize(length, 1.0);
      chunk_.tokens.resize(length, end_id_);
    }
    chunk_.tokens.insert(chunk_.tokens.begin(), start_id_);
    chunk_.tokens.push_back(end_id_);
    chunk_.multipliers.insert(chunk_.multipliers.begin(), 1.0);
    chunk_.multipliers.push_back(1.0);
    last_comma_ = -1;
    out_.chunks.push_back(std::move(chunk_));
    chunk_ = PromptChunk();
  }

  void finish() {
    if (!chunk_.tokens.empty() || out_.chunks.empty()) next_chunk(true);
  }

 private:
  int64_t start_id_, end_id_;
  ChunkOptions options_;
  ChunkedPrompt& out_;
  PromptChunk chunk_;
  int last_comma_ = -1;
};

}  // namespace

ChunkOptions chunk_options_for(const ClipTokenizer& tokenizer) {
  ChunkOptions options;
  options.chunk_length = std::min(options.chunk_length, static_cast<int>(tokenizer.max_length()) - 2);
  return options;
}

ChunkedPrompt chunk_prompt(const ClipTokenizer& tokenizer, const std::string& prompt,
                           const std::vector<EmbeddingName>& embeddings, const ChunkOptions& options) {
  if (options.chunk_length < 1 || options.chunk_length + 2 > tokenizer.max_length()) {
    throw InvalidParameter("chunk_length", std::to_string(options.chunk_length) + " does not fit the tokenizer's " +
                                               std::to_string(tokenizer.max_length()) + " positions");
  }
  ChunkedPrompt result;
  result.runs = parse_prompt_attention(prompt);
  const int64_t comma_id = tokenizer.token_id(",</w>").value_or(-1);
  Chunker chunker(tokenizer, options, result);
  for (const auto& run : result.runs) {
    if (is_chunk_break(run)) {
      chunker.next_chunk(false);
      continue;
    }
    chunker.add_run(tokenizer.tokenize(run.text), run.weight, comma_id, embeddings);
  }
  chunker.finish();
  return result;
}

std::vector<int64_t> encoder_ids(const PromptChunk& chunk, int64_t end_id, int64_t pad_id) {
  std::vector<int64_t> ids = chunk.tokens;
  const auto end = std::find(ids.begin(), ids.end(), end_id);
  if (end != ids.end()) std::fill(end + 1, ids.end(), pad_id);
  return ids;
}

}  // namespace diffuse::text
