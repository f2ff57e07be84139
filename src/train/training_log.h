// What a training run leaves on disk besides the model: the loss log (CSV), the checkpoint state
// that lets an interrupted run resume, and progress reports with an ETA.
#pragma once
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace diffuse::train {

// Losses per step of each stage. The CSV ("stage,step,loss") holds nothing time-dependent, so the
// same seed gives the same file byte for byte.
struct LossLog {
  std::vector<double> vae, diffusion;
};
void write_loss_csv(const std::filesystem::path& path, const LossLog& log);
// Reads a log written by write_loss_csv; throws diffuse::Error naming the file and line if damaged.
LossLog read_loss_csv(const std::filesystem::path& path);
// Mean of the last `window` values (all of them when fewer): the "final loss" a record states.
double final_loss(const std::vector<double>& losses, size_t window = 50);

enum class Stage { Vae, Diffusion, Done };

struct TrainState {
  Stage stage = Stage::Vae;
  int step = 0;                 // steps completed in `stage`
  double scaling_factor = 1.0;  // measured when stage 1 ends
  double vae_seconds = 0, diffusion_seconds = 0;
};
void write_state(const std::filesystem::path& path, const TrainState& state);
TrainState read_state(const std::filesystem::path& path);

struct TrainProgress {
  std::string stage;
  int step = 0;  // 1-based
  int total = 0;
  double loss = 0;  // running mean of recent steps
  double seconds_per_step = 0;
  double eta_seconds = 0;  // for the rest of this stage
};
using TrainProgressCallback = std::function<void(const TrainProgress&)>;

// Measures the step rate since a stage (re)started and reports about once every `interval_s`.
class ProgressMeter {
 public:
  ProgressMeter(std::string stage, int first_step, int total, TrainProgressCallback callback, double interval_s = 5);
  void step_done(int step, const std::vector<double>& losses);

 private:
  std::string stage_;
  int first_step_, total_;
  TrainProgressCallback callback_;
  double interval_s_;
  double started_, last_report_ = -1e9;
};

double monotonic_seconds();

}  // namespace diffuse::train
