#include <cstdio>
#include <memory>
#include <optional>

#include "cli/commands.h"
#include "explain/token_table.h"
#include "util/error.h"

namespace diffuse::cli {

namespace {

struct TokensOptions {
  std::string prompt;
  std::string model;
  std::string tokenizer;
  int values = 6;
  bool full = false;
};

void run_tokens(const TokensOptions& o) {
  if (o.model.empty() && o.tokenizer.empty()) {
    throw Error("tokens: give a model (-m) or a tokenizer (--tokenizer)");
  }
  if (o.full && o.model.empty()) throw Error("--full: the numbers come from a model; give -m");
  if (o.values < 1) throw Error("--values: " + std::to_string(o.values) + " must be at least 1");
  std::optional<pipeline::StableDiffusionModel> model;
  if (!o.model.empty()) {
    pipeline::LoadOptions load;
    if (!o.tokenizer.empty()) load.tokenizer = o.tokenizer;
    model.emplace(pipeline::StableDiffusionModel::load(o.model, load));
  }
  const auto tokenizer = model ? model->tokenizer : text::ClipTokenizer::from_path(o.tokenizer);
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
  command->callback([options] { run_tokens(*options); });
}

}  // namespace diffuse::cli
