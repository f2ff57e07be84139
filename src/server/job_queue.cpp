#include "server/job_queue.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>

namespace diffuse::server {

const char* job_state_name(JobState state) {
  switch (state) {
    case JobState::Queued: return "queued";
    case JobState::Running: return "running";
    case JobState::Done: return "done";
    case JobState::Failed: return "failed";
    case JobState::Interrupted: return "interrupted";
    case JobState::Unknown: break;
  }
  return "unknown";
}

namespace {

class LocalQueue final : public JobQueue {
 public:
  explicit LocalQueue(size_t keep_finished) : keep_finished_(keep_finished) {}

  std::string submit(const std::string& kind, const nlohmann::json& payload) override {
    std::lock_guard lock(mutex_);
    const std::string id = "job-" + std::to_string(++counter_);
    Entry entry;
    entry.job = Job{id, kind, payload};
    entry.status.state = JobState::Queued;
    jobs_.emplace(id, std::move(entry));
    waiting_.push_back(id);
    changed_.notify_all();
    return id;
  }

  JobStatus status(const std::string& id) override {
    std::lock_guard lock(mutex_);
    return status_locked(id);
  }

  JobStatus wait(const std::string& id, std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] {
      const auto found = jobs_.find(id);
      return found == jobs_.end() || found->second.status.finished();
    });
    return status_locked(id);
  }

  bool interrupt(const std::string& id) override {
    std::lock_guard lock(mutex_);
    const auto found = jobs_.find(id);
    if (found == jobs_.end() || found->second.status.finished()) return false;
    found->second.interrupt = true;
    if (found->second.status.state == JobState::Queued) {
      // Never started: it finishes now, with nothing made.
      waiting_.erase(std::find(waiting_.begin(), waiting_.end(), id));
      found->second.status.state = JobState::Interrupted;
      found->second.status.result = nlohmann::json{{"images", nlohmann::json::array()}};
      finished_locked(id);
    }
    changed_.notify_all();
    return true;
  }

  std::optional<std::string> running() override {
    std::lock_guard lock(mutex_);
    if (running_.empty()) return std::nullopt;
    return running_.front();
  }

  size_t queued() override {
    std::lock_guard lock(mutex_);
    return waiting_.size();
  }

  std::optional<Job> take(std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, timeout, [&] { return !waiting_.empty(); })) return std::nullopt;
    const std::string id = waiting_.front();
    waiting_.pop_front();
    auto& entry = jobs_.at(id);
    entry.status.state = JobState::Running;
    entry.status.worker = "local";
    ++entry.status.attempts;
    running_.push_back(id);
    changed_.notify_all();
    return entry.job;
  }

  void update(const std::string& id, const nlohmann::json& progress, const std::string& preview_png) override {
    std::lock_guard lock(mutex_);
    const auto found = jobs_.find(id);
    if (found == jobs_.end()) return;
    found->second.status.progress = progress;
    if (!preview_png.empty()) found->second.status.preview_png = preview_png;
  }

  bool interrupted(const std::string& id) override {
    std::lock_guard lock(mutex_);
    const auto found = jobs_.find(id);
    return found != jobs_.end() && found->second.interrupt;
  }

  void finish(const std::string& id, const JobStatus& final_status) override {
    std::lock_guard lock(mutex_);
    const auto found = jobs_.find(id);
    if (found == jobs_.end()) return;
    const auto before = found->second.status;
    found->second.status = final_status;
    if (final_status.progress.is_null()) found->second.status.progress = before.progress;  // where it stopped
    found->second.status.worker = before.worker;
    found->second.status.attempts = before.attempts;
    found->second.status.preview_png.clear();  // results carry the images; previews were for the wait
    running_.erase(std::remove(running_.begin(), running_.end(), id), running_.end());
    finished_locked(id);
    changed_.notify_all();
  }

 private:
  struct Entry {
    Job job;
    JobStatus status;
    bool interrupt = false;
  };

  JobStatus status_locked(const std::string& id) const {
    const auto found = jobs_.find(id);
    if (found == jobs_.end()) return JobStatus{};
    JobStatus status = found->second.status;
    if (status.state == JobState::Queued) {
      status.ahead = static_cast<int>(std::find(waiting_.begin(), waiting_.end(), id) - waiting_.begin()) +
                     static_cast<int>(running_.size());
    }
    return status;
  }

  void finished_locked(const std::string& id) {
    done_order_.push_back(id);
    while (done_order_.size() > keep_finished_) {
      jobs_.erase(done_order_.front());
      done_order_.pop_front();
    }
  }

  const size_t keep_finished_;
  std::mutex mutex_;
  std::condition_variable changed_;
  uint64_t counter_ = 0;
  std::map<std::string, Entry> jobs_;
  std::deque<std::string> waiting_;
  std::deque<std::string> running_;
  std::deque<std::string> done_order_;
};

}  // namespace

std::unique_ptr<JobQueue> make_local_queue(size_t keep_finished) { return std::make_unique<LocalQueue>(keep_finished); }

}  // namespace diffuse::server
