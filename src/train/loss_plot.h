// A loss curve as a PNG, drawn without a plotting library: one panel per training stage.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace diffuse::train {

struct LossSeries {
  std::string stage;
  std::vector<double> losses;  // one per step
};

// Each panel plots log10(loss) per step (light) and its running mean (dark) against the step,
// y scaled to the panel's own range, with tick marks at every power of ten.
void write_loss_plot(const std::filesystem::path& path, const std::vector<LossSeries>& series);

}  // namespace diffuse::train
