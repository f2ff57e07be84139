// `diffuse tokens`: a prompt as the text encoder sees it. First token ids (with the start and end
// markers and where the 77-token window cuts), then, with a model, the numbers: each token's row of
// the token-embedding matrix and the encoder's output row at its position (what the UNet attends to).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "pipeline/model.h"
#include "text/clip_tokenizer.h"

namespace diffuse::explain {

struct TokenRow {
  int position;      // index in the encoder's input window; -1 when cut off
  int64_t id;
  std::string text;  // vocabulary entry, "</w>" marks a word end
  std::string role;  // "start", "end", "word", "cut" (beyond the window) or "pad"
};

struct TokenTable {
  int window = 0;               // the encoder's input length (77)
  std::vector<TokenRow> rows;   // the prompt's tokens in order, then one row per padding position
  int cut = 0;                  // tokens dropped because the window is full
  // With a model, one row per position 0..window-1 (cut tokens have none):
  at::Tensor embedding_rows;    // token_embedding.weight[id]       [window, width]
  at::Tensor output_rows;       // the conditioning the UNet sees    [window, width]
};

TokenTable tokenize_prompt(const text::ClipTokenizer& tokenizer, const std::string& prompt);
// Fills embedding_rows and output_rows from the model's text encoder.
void add_numbers(TokenTable& table, pipeline::StableDiffusionModel& model, const std::string& prompt);

// Tokens and, when present, the first `values` numbers of each row; padding summarised in one line.
std::string to_text(const TokenTable& table, int values);
// Every position with every number: position,id,token,role,embedding_0..,output_0..
std::string to_csv(const TokenTable& table);

}  // namespace diffuse::explain
