#include "cli/progress_line.h"

#include <unistd.h>

#include <cstdio>
#include <string>

namespace diffuse::cli {

namespace {

using Clock = std::chrono::steady_clock;

std::string seconds_text(double seconds) {
  char text[32];
  if (seconds < 60) {
    std::snprintf(text, sizeof text, "%.1f s", seconds);
  } else if (seconds < 3600) {
    std::snprintf(text, sizeof text, "%dm%02ds", static_cast<int>(seconds) / 60, static_cast<int>(seconds) % 60);
  } else {
    std::snprintf(text, sizeof text, "%dh%02dm", static_cast<int>(seconds) / 3600, static_cast<int>(seconds) / 60 % 60);
  }
  return text;
}

const char* unit_name(pipeline::Phase phase) {
  switch (phase) {
    case pipeline::Phase::Load: return "component";
    case pipeline::Phase::Encode: return "prompt";
    case pipeline::Phase::Denoise: return "step";
    case pipeline::Phase::Decode: return "tile";
    case pipeline::Phase::Upscale: return "tile";
  }
  return "unit";
}

// "step 3/20  1.52 s/step  ETA 25.8 s", with the time since the phase began while a unit runs.
std::string describe(const pipeline::Progress& p, double elapsed) {
  std::string text;
  if (p.images > 1 && p.phase != pipeline::Phase::Load) {
    text += "image " + std::to_string(p.image + 1) + "/" + std::to_string(p.images) + " ";
  }
  const char* unit = unit_name(p.phase);
  if (p.phase == pipeline::Phase::Denoise) {
    text += "step " + std::to_string(p.done) + "/" + std::to_string(p.total);
  } else {
    text += std::string(pipeline::phase_name(p.phase)) + " " + std::to_string(p.done) + "/" + std::to_string(p.total) +
            " " + unit + "s";
  }
  char pace[48];
  if (p.done > 0) {
    std::snprintf(pace, sizeof pace, "  %.2f s/%s", p.elapsed_seconds / p.done, unit);
    text += pace;
  }
  text += "  " + seconds_text(elapsed);
  if (p.done >= p.total) return text;
  if (p.eta_seconds < 0) return text + "  ETA after the first " + unit;
  // The estimate was made at the last unit's end; the time since has been spent on the next one.
  const double since_report = elapsed - p.elapsed_seconds;
  return text + "  ETA " + seconds_text(std::max(0.0, p.eta_seconds - since_report));
}

}  // namespace

ProgressLine::ProgressLine()
    : terminal_(isatty(fileno(stderr)) != 0), last_event_(Clock::now()), last_output_(Clock::now()) {
  ticker_ = std::thread([this] { tick(); });
}

ProgressLine::~ProgressLine() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    if (line_open_) std::fputc('\n', stderr);
  }
  wake_.notify_all();
  ticker_.join();
}

bool ProgressLine::operator()(const pipeline::Progress& progress) {
  std::lock_guard<std::mutex> lock(mutex_);
  last_ = progress;
  last_->latents = last_->denoised = nullptr;
  last_event_ = Clock::now();
  draw(true);
  return true;
}

void ProgressLine::print(const std::string& line) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (line_open_) std::fputc('\n', stderr);
  line_open_ = false;
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

void ProgressLine::draw(bool finished_unit) {
  if (!last_) return;
  const auto now = Clock::now();
  const double since_event = std::chrono::duration<double>(now - last_event_).count();
  const std::string text = describe(*last_, last_->elapsed_seconds + since_event);
  const bool phase_over = last_->done >= last_->total;
  if (terminal_) {
    // \033[K clears what a longer previous line left.
    std::fprintf(stderr, "\r%s\033[K%s", text.c_str(), phase_over && finished_unit ? "\n" : "");
    line_open_ = !(phase_over && finished_unit);
  } else {
    std::fprintf(stderr, "%s\n", text.c_str());
  }
  std::fflush(stderr);
  last_output_ = now;
}

void ProgressLine::tick() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, std::chrono::seconds(1));
    if (stopping_ || !last_ || last_->done >= last_->total) continue;
    const double quiet = std::chrono::duration<double>(Clock::now() - last_output_).count();
    if (terminal_ || quiet >= 10) draw(false);
  }
}

}  // namespace diffuse::cli
