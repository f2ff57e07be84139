#pragma once
// Jobs between the HTTP front and the worker that computes them: submitted in order, taken one at a
// time, progress and previews while they run, results kept for their client. One interface, two
// stores: this process (make_local_queue) or a Redis stream shared by several machines
// (server/redis_queue.h), so the front never knows which it talks to.
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace diffuse::server {

struct Job {
  std::string id;
  std::string kind;         // "txt2img" or "img2img"
  nlohmann::json payload;   // the request as the client sent it (AUTOMATIC1111's fields)
};

enum class JobState { Queued, Running, Done, Failed, Interrupted, Unknown };
const char* job_state_name(JobState state);  // "queued", "running", "done", "failed", "interrupted", "unknown"

struct JobStatus {
  JobState state = JobState::Unknown;
  int ahead = 0;                 // Queued: jobs before it
  nlohmann::json progress;       // Running: {"step", "steps", "image", "images", "eta_seconds", "fraction"}
  std::string preview_png;       // Running: the latest step preview (PNG bytes), empty if none
  nlohmann::json result;         // Done (and Interrupted, with what was made): the response body
  std::string error;             // Failed: the message
  int error_status = 0;          // Failed: the HTTP status it calls for (422 for a bad field)
  std::string worker;            // who is computing it, or who finished it
  int attempts = 0;              // times a worker took it (more than 1: its first worker died)
  bool finished() const { return state == JobState::Done || state == JobState::Failed || state == JobState::Interrupted; }
};

class JobQueue {
 public:
  virtual ~JobQueue() = default;

  // Front side.
  virtual std::string submit(const std::string& kind, const nlohmann::json& payload) = 0;
  virtual JobStatus status(const std::string& id) = 0;
  // The status once the job has finished, or as it stands after `timeout`.
  virtual JobStatus wait(const std::string& id, std::chrono::milliseconds timeout) = 0;
  // Asks the job (queued or running) to stop; false for an unknown or finished one.
  virtual bool interrupt(const std::string& id) = 0;
  // A job computing now (the oldest, where several workers run), if any.
  virtual std::optional<std::string> running() = 0;
  virtual size_t queued() = 0;

  // Worker side.
  virtual std::optional<Job> take(std::chrono::milliseconds timeout) = 0;
  virtual void update(const std::string& id, const nlohmann::json& progress, const std::string& preview_png) = 0;
  virtual bool interrupted(const std::string& id) = 0;
  virtual void finish(const std::string& id, const JobStatus& final_status) = 0;
};

// In this process. Finished jobs are kept for their clients, the oldest dropped past `keep_finished`.
std::unique_ptr<JobQueue> make_local_queue(size_t keep_finished = 512);

}  // namespace diffuse::server
