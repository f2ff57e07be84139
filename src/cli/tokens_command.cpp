#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "explain/prompt_reading.h"
#include "explain/token_table.h"
#include "pipeline/embeddings.h"
#include "util/error.h"

namespace diffuse::cli {

namespace {

struct TokensOptions {
  std::string prompt;
  std::string model;
  std::string tokenizer;
  int values = 6;
  int steps = 20;
  bool full = false;
  bool json = false;
  bool plain_prompt = false;
  std::vector<std::string> embeddings, embedding_dirs;
};

void run_tokens(const TokensOptions& o) {
  if (o.model.empty() && o.tokenizer.empty()) {
    throw Error("tokens: give a model (-m) or a tokenizer (--tokenizer)");
  }
  if (o.full && o.model.empty()) throw Error("--full: the numbers come from a model; give -m");
  if (o.json && (o.full || o.plain_prompt))
    throw Error("--json prints the prompt language's reading: drop --full and --plain-prompt");
  if (o.values < 1) throw Error("--values: " + std::to_string(o.values) + " must be at least 1");
  if (o.steps < 1) throw Error("--steps: " + std::to_string(o.steps) + " must be at least 1");
  if (o.model.empty() && !(o.embeddings.empty() && o.embedding_dirs.empty())) {
    throw Error("--embedding: embeddings are added to a model's text encoder; give -m");
  }
  std::optional<pipeline::StableDiffusionModel> model;
  if (!o.model.empty()) {
    pipeline::LoadOptions load;
    if (!o.tokenizer.empty()) load.tokenizer = o.tokenizer;
    model.emplace(pipeline::StableDiffusionModel::load(o.model, load));
    const auto added = pipeline::add_embeddings(*model, {o.embeddings.begin(), o.embeddings.end()},
                                                {o.embedding_dirs.begin(), o.embedding_dirs.end()});
    for (const auto& skipped : added.skipped) std::fprintf(stderr, "warning: embedding skipped: %s\n", skipped.c_str());
  }
  const auto tokenizer = model ? model->tokenizer : text::ClipTokenizer::from_path(o.tokenizer);
  const explain::PromptChunker chunk = [&](const std::string& text) {
    if (model) return model->chunk_prompt(text);
    return text::chunk_prompt(tokenizer, text, {}, text::chunk_options_for(tokenizer));
  };
  std::vector<text::EmbeddingName> names;
  if (model) {
    for (const auto& e : model->embeddings()) names.push_back({e.name, {}, static_cast<int>(e.vectors.size(0))});
  }
  if (o.json) {
    // One line for scripts (jq pretty-prints); a token that is not whole UTF-8 is shown with U+FFFD.
    const auto reading = explain::prompt_reading_json(tokenizer, o.prompt, o.steps, chunk, names);
    std::printf("%s\n", reading.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return;
  }
  if (!o.plain_prompt && explain::uses_prompt_language(o.prompt, o.steps, chunk)) {
    std::printf("AUTOMATIC1111's reading (what generate uses):\n%s\nAs plain tokens (--plain-prompt):\n",
                explain::describe_prompt_reading(tokenizer, o.prompt, o.steps, chunk, names).c_str());
  }
  auto table = explain::tokenize_prompt(tokenizer, o.prompt);
  if (model) explain::add_numbers(table, *model, o.prompt);
  std::fputs((o.full ? explain::to_csv(table) : explain::to_text(table, o.values)).c_str(), stdout);
}

}  // namespace

void add_tokens_command(CLI::App& app) {
  auto options = std::make_shared<TokensOptions>();
  auto* command = app.add_subcommand("tokens", "Show a prompt as tokens and, with a model, as numbers");
  command->add_option("prompt", options->prompt, "The prompt")->required();
  command->add_option("-m,--model", options->model, "Model whose embedding matrix and text encoder give the numbers");
  command->add_option("--tokenizer", options->tokenizer,
                      "Tokenizer folder (vocab.json + merges.txt) or bpe_simple_vocab_16e6.txt.gz");
  command->add_option("--values", options->values, "Numbers shown per row")->capture_default_str();
  command->add_flag("--full", options->full, "Print every position and every number as CSV");
  command->add_flag("--json", options->json,
                    "Print the prompt's reading as JSON: pieces and weights, texts per step, each chunk's ids "
                    "and weights");
  command->add_option("--steps", options->steps, "Sampling steps, for prompt editing [from:to:when] and [a|b]")
      ->capture_default_str();
  command->add_flag("--plain-prompt", options->plain_prompt,
                    "Only the plain tokens, as diffusers reads the prompt (no weights, chunks or schedules)");
  command->add_option("--embedding", options->embeddings, "A textual-inversion file whose name the prompt may use")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  command->add_option("--embeddings-dir", options->embedding_dirs, "A folder of textual-inversion files")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  command->callback([options] { run_tokens(*options); });
}

}  // namespace diffuse::cli
