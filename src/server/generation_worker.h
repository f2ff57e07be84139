#pragma once
// The worker side of a server: takes jobs from a JobQueue one at a time and computes them on the one
// loaded model through pipeline/ (nothing of cli/), reporting every step and a preview as it goes.
#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#include <filesystem>

#include "explain/step_previews.h"
#include "pipeline/model.h"
#include "server/a1111_api.h"
#include "server/job_queue.h"

namespace diffuse::server {

class GenerationWorker {
 public:
  // `lora_dirs`: where <lora:name> tags and LoRA names of every request are looked up;
  // `controlnet_dirs`: where ControlNet units' model names are.
  GenerationWorker(pipeline::StableDiffusionModel& model, JobQueue& queue, ServeLimits limits,
                   std::vector<std::filesystem::path> lora_dirs = {},
                   std::vector<std::filesystem::path> controlnet_dirs = {});
  ~GenerationWorker();
  // `threads` CPU threads for the worker's thread (OpenMP counts are per thread); 0 keeps the default.
  void start(int threads = 0);
  void stop();  // after the job in hand (interrupted first)

  // How the live preview of each step is drawn (default linear: free; taesd needs the model loaded
  // with one). Set before start().
  void set_preview(explain::PreviewMode mode) { preview_ = mode; }

  // One job, start to end, on the calling thread: what start()'s thread does for each.
  JobStatus run(const Job& job);

 private:
  pipeline::StableDiffusionModel& model_;
  JobQueue& queue_;
  ServeLimits limits_;
  std::vector<std::filesystem::path> lora_dirs_;
  std::vector<std::filesystem::path> controlnet_dirs_;
  explain::PreviewMode preview_ = explain::PreviewMode::Linear;
  std::atomic<bool> stopping_{false};
  std::mutex current_mutex_;
  std::string current_;  // the job in hand, if any
  std::thread thread_;
};

}  // namespace diffuse::server
