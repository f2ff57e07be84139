#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "explain/model_inventory.h"

namespace diffuse::cli {

namespace {

struct InspectOptions {
  std::string model;
  bool json = false;
  bool totals_only = false;
};

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto options = std::make_shared<InspectOptions>();
  auto* command = app.add_subcommand(
      "inspect", "List a model's tensors (name, shape, dtype, parameters), totals per component and its architecture");
  command->add_option("model", options->model, "Diffusers folder or single-file .safetensors checkpoint")->required();
  command->add_flag("--json", options->json, "Print JSON for machines instead of tables");
  command->add_flag("--totals", options->totals_only, "Leave out the per-tensor list");
  command->callback([options] {
    const auto inventory = explain::inspect_model(options->model);
    if (options->json) {
      auto json = explain::to_json(inventory);
      if (options->totals_only) {
        for (auto& component : json["components"]) component.erase("tensors");
      }
      std::printf("%s\n", json.dump(2).c_str());
    } else {
      std::fputs(explain::to_text(inventory, !options->totals_only).c_str(), stdout);
    }
  });
}

}  // namespace diffuse::cli
