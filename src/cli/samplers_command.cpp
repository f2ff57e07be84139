#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "pipeline/presets.h"
#include "sampling/sampling.h"
#include "util/format.h"

namespace diffuse::cli {

namespace {

// A preset's settings as the flags that would give them.
std::string preset_flags(const pipeline::Preset& preset) {
  std::string text = "--sampler " + preset.sampler;
  if (!preset.timestep_spacing.empty()) text += " --timestep-spacing " + preset.timestep_spacing;
  return text + " --steps " + std::to_string(preset.steps) + " --cfg-scale " + format_number(preset.cfg_scale);
}

}  // namespace

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
      std::printf("  %-14s %s\n  %-14s %s\n", preset.name.c_str(), preset_flags(preset).c_str(), "",
                  preset.description.c_str());
    }
  });
}

}  // namespace diffuse::cli
