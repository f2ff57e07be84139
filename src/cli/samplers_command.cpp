#include <cstdio>

#include "cli/commands.h"
#include "pipeline/presets.h"
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
    std::printf("\nPresets (--preset; flags given with it override its settings):\n");
    for (const auto& preset : pipeline::presets()) {
      std::printf("  %-14s %s\n  %-14s %s\n", preset.name.c_str(), pipeline::describe_settings(preset).c_str(), "",
                  preset.description.c_str());
    }
  });
}

}  // namespace diffuse::cli
