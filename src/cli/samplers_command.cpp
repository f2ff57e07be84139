#include <cstdio>

#include "cli/commands.h"
#include "sampling/sampling.h"

namespace diffuse::cli {

void add_samplers_command(CLI::App& app) {
  auto* command = app.add_subcommand("samplers", "List the samplers and schedules");
  command->callback([] {
    std::printf("Samplers (--sampler):\n");
    for (const auto& [name, description] : sampling::sampler_names()) {
      std::printf("  %-14s %s\n", name.c_str(), description.c_str());
    }
    std::printf("\nSchedules (--schedule):\n");
    for (const auto& [name, description] : sampling::schedule_names()) {
      std::printf("  %-14s %s\n", name.c_str(), description.c_str());
    }
  });
}

}  // namespace diffuse::cli
