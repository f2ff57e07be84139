#pragma once
// Each subcommand registers itself on the app; its callback runs when the user picks it.
#include <CLI/CLI.hpp>

namespace diffuse::cli {

void add_generate_command(CLI::App& app);
void add_samplers_command(CLI::App& app);
// argv goes into the training record, so the record names the exact command.
void add_train_command(CLI::App& app, int argc, char** argv);
void add_inspect_command(CLI::App& app);
void add_tokens_command(CLI::App& app);
void add_image_numbers_command(CLI::App& app);
void add_convert_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_preprocess_command(CLI::App& app);
void add_upscale_command(CLI::App& app);

}  // namespace diffuse::cli
