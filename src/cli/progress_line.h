#pragma once
// The generate command's progress on stderr: one line per phase (loading, encoding, denoising,
// decoding) that says what is done, the time per unit and the time left. On a terminal the line is
// redrawn every second even while one unit takes minutes (a 4096x4096 step), so a long run always
// shows it is alive; in a log, a line per unit and one every 10 s of silence.
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "pipeline/progress.h"

namespace diffuse::cli {

class ProgressLine {
 public:
  ProgressLine();
  ~ProgressLine();
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  // A pipeline::ProgressCallback: draws, never cancels.
  bool operator()(const pipeline::Progress& progress);
  // Prints a line of its own (a warning, "wrote out.png") without tearing the progress line.
  void print(const std::string& line);

 private:
  void tick();
  void draw(bool finished_unit);

  const bool terminal_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::optional<pipeline::Progress> last_;  // without its tensor pointers
  std::chrono::steady_clock::time_point last_event_, last_output_;
  bool line_open_ = false;  // a terminal line drawn without its newline yet
  std::thread ticker_;
};

}  // namespace diffuse::cli
