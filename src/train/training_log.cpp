#include "train/training_log.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <sstream>

#include <nlohmann/json.hpp>

#include "util/atomic_file.h"
#include "util/error.h"
#include "util/json.h"

namespace diffuse::train {

namespace fs = std::filesystem;

namespace {

void write_atomically(const fs::path& path, const std::string& text) {
  write_file_atomically(path, [&](const fs::path& temp) {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) throw Error(path.string() + ": cannot write");
  });
}

const char* stage_name(Stage stage) {
  switch (stage) {
    case Stage::Vae: return "vae";
    case Stage::Diffusion: return "diffusion";
    default: return "done";
  }
}

}  // namespace

void write_loss_csv(const fs::path& path, const LossLog& log) {
  std::string text = "stage,step,loss\n";
  char line[96];
  for (const auto& [name, losses] : {std::pair{"vae", &log.vae}, std::pair{"diffusion", &log.diffusion}}) {
    for (size_t i = 0; i < losses->size(); ++i) {
      std::snprintf(line, sizeof line, "%s,%zu,%.9g\n", name, i + 1, (*losses)[i]);
      text += line;
    }
  }
  write_atomically(path, text);
}

LossLog read_loss_csv(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(path.string() + ": cannot read the loss log");
  LossLog log;
  std::string line;
  std::getline(in, line);
  for (int number = 2; std::getline(in, line); ++number) {
    std::istringstream fields(line);
    std::string stage, step, loss;
    if (!std::getline(fields, stage, ',') || !std::getline(fields, step, ',') || !std::getline(fields, loss)) {
      throw Error(path.string() + ": line " + std::to_string(number) + " is not stage,step,loss");
    }
    auto& losses = stage == "vae" ? log.vae : log.diffusion;
    try {
      losses.push_back(std::stod(loss));
    } catch (const std::exception&) {
      throw Error(path.string() + ": line " + std::to_string(number) + " has no number for the loss");
    }
  }
  return log;
}

double final_loss(const std::vector<double>& losses, size_t window) {
  if (losses.empty()) return 0;
  const size_t n = std::min(window, losses.size());
  return std::accumulate(losses.end() - static_cast<std::ptrdiff_t>(n), losses.end(), 0.0) / static_cast<double>(n);
}

void write_state(const fs::path& path, const TrainState& state) {
  const nlohmann::json json{{"stage", stage_name(state.stage)},
                            {"step", state.step},
                            {"scaling_factor", state.scaling_factor},
                            {"vae_seconds", state.vae_seconds},
                            {"diffusion_seconds", state.diffusion_seconds}};
  write_atomically(path, json.dump(2) + "\n");
}

TrainState read_state(const fs::path& path) {
  const auto json = read_json_file(path);
  TrainState state;
  try {
    const auto stage = json.at("stage").get<std::string>();
    state.stage = stage == "vae" ? Stage::Vae : stage == "diffusion" ? Stage::Diffusion : Stage::Done;
    state.step = json.at("step").get<int>();
    state.scaling_factor = json.at("scaling_factor").get<double>();
    state.vae_seconds = json.at("vae_seconds").get<double>();
    state.diffusion_seconds = json.at("diffusion_seconds").get<double>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(path.string() + ": damaged checkpoint state: " + e.what());
  }
  return state;
}

double monotonic_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

ProgressMeter::ProgressMeter(std::string stage, int first_step, int total, TrainProgressCallback callback, double interval_s)
    : stage_(std::move(stage)), first_step_(first_step), total_(total), callback_(std::move(callback)),
      interval_s_(interval_s), started_(monotonic_seconds()) {}

void ProgressMeter::step_done(int step, const std::vector<double>& losses) {
  if (!callback_) return;
  const double now = monotonic_seconds();
  if (now - last_report_ < interval_s_ && step != total_) return;
  last_report_ = now;
  TrainProgress p;
  p.stage = stage_;
  p.step = step;
  p.total = total_;
  p.loss = final_loss(losses, 20);
  p.seconds_per_step = (now - started_) / std::max(1, step - first_step_);
  p.eta_seconds = p.seconds_per_step * (total_ - step);
  callback_(p);
}

}  // namespace diffuse::train
