#pragma once
// Each subcommand registers itself on the app; its callback runs when the user picks it.
#include <CLI/CLI.hpp>

namespace diffuse::cli {

void add_generate_command(CLI::App& app);
void add_samplers_command(CLI::App& app);

}  // namespace diffuse::cli
