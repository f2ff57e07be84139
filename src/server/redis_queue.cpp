#include "server/redis_queue.h"

#include <hiredis/hiredis.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "util/error.h"

namespace diffuse::server {

using nlohmann::json;

namespace {

using Reply = std::unique_ptr<redisReply, void (*)(void*)>;

class Connection {
 public:
  Connection(const std::string& host, int port, const std::string& url) : url_(url) {
    context_ = redisConnectWithTimeout(host.c_str(), port, timeval{5, 0});
    if (context_ == nullptr || context_->err) {
      const std::string why = context_ ? context_->errstr : "out of memory";
      if (context_) redisFree(context_);
      throw Error(url_ + ": cannot connect to Redis (" + why + ")");
    }
  }
  ~Connection() { redisFree(context_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  Reply run(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lengths;
    for (const auto& arg : args) {
      argv.push_back(arg.data());
      lengths.push_back(arg.size());
    }
    auto* raw = static_cast<redisReply*>(redisCommandArgv(context_, static_cast<int>(argv.size()), argv.data(), lengths.data()));
    if (raw == nullptr) throw Error(url_ + ": Redis connection lost (" + std::string(context_->errstr) + ")");
    Reply reply(raw, freeReplyObject);
    if (reply->type == REDIS_REPLY_ERROR) {
      const std::string message(reply->str, reply->len);
      if (message.rfind("BUSYGROUP", 0) == 0) return reply;  // the group exists: fine
      throw Error(url_ + ": Redis " + args[0] + ": " + message);
    }
    return reply;
  }

 private:
  std::string url_;
  redisContext* context_ = nullptr;
};

std::string text_of(const redisReply* reply) {
  return reply && (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS) ? std::string(reply->str, reply->len)
                                                                                            : std::string();
}

std::string random_id() {
  std::random_device device;
  char text[24];
  std::snprintf(text, sizeof text, "%08x%08x", device(), device());
  return text;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

class RedisQueue final : public JobQueue {
 public:
  explicit RedisQueue(const RedisQueueOptions& options) : options_(options) {
    const std::string prefix = "redis://";
    if (options.url.rfind(prefix, 0) != 0) throw InvalidParameter("queue", options.url + ": expected redis://HOST:PORT");
    const std::string rest = options.url.substr(prefix.size());
    const auto colon = rest.rfind(':');
    host_ = colon == std::string::npos ? rest : rest.substr(0, colon);
    try {
      port_ = colon == std::string::npos ? 6379 : std::stoi(rest.substr(colon + 1));
    } catch (const std::exception&) {
      throw InvalidParameter("queue", options.url + ": the port is not a number");
    }
    if (host_.empty()) throw InvalidParameter("queue", options.url + ": no host");
    worker_ = options.worker_name;
    if (worker_.empty()) {
      char host[256] = "host";
      ::gethostname(host, sizeof host - 1);
      worker_ = std::string(host) + ":" + std::to_string(::getpid());
    }
    main_ = std::make_unique<Connection>(host_, port_, options.url);
    main_->run({"XGROUP", "CREATE", key("jobs"), "workers", "$", "MKSTREAM"});
  }

  ~RedisQueue() override {
    stopping_ = true;
    heartbeat_wake_.notify_all();
    if (heartbeat_.joinable()) heartbeat_.join();
  }

  std::string submit(const std::string& kind, const json& payload) override {
    std::lock_guard lock(mutex_);
    const std::string id = random_id();
    const auto seq = main_->run({"INCR", key("seq")})->integer;
    main_->run({"HSET", job_key(id), "kind", kind, "payload", payload.dump(), "state", "queued", "seq",
                std::to_string(seq), "attempts", "0"});
    main_->run({"ZADD", key("queued"), std::to_string(seq), id});
    main_->run({"XADD", key("jobs"), "*", "id", id});
    return id;
  }

  JobStatus status(const std::string& id) override {
    std::lock_guard lock(mutex_);
    return status_locked(id);
  }

  JobStatus wait(const std::string& id, std::chrono::milliseconds timeout) override {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (true) {
      auto current = status(id);
      if (current.finished() || current.state == JobState::Unknown || std::chrono::steady_clock::now() >= until) return current;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  }

  bool interrupt(const std::string& id) override {
    std::lock_guard lock(mutex_);
    const auto state = text_of(main_->run({"HGET", job_key(id), "state"}).get());
    if (state != "queued" && state != "running") return false;
    main_->run({"HSET", job_key(id), "interrupt", "1"});
    if (state == "queued" && main_->run({"HSETNX", job_key(id), "finished", "1"})->integer == 1) {
      // Never started: finished now, with nothing made; the worker that meets its entry drops it.
      main_->run({"HSET", job_key(id), "state", "interrupted", "result", json{{"images", json::array()}}.dump()});
      main_->run({"ZREM", key("queued"), id});
      main_->run({"EXPIRE", job_key(id), std::to_string(options_.keep_finished.count())});
    }
    return true;
  }

  std::optional<std::string> running() override {
    std::lock_guard lock(mutex_);
    const auto reply = main_->run({"ZRANGE", key("running"), "0", "0"});
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) return std::nullopt;
    return text_of(reply->element[0]);
  }

  size_t queued() override {
    std::lock_guard lock(mutex_);
    return static_cast<size_t>(main_->run({"ZCARD", key("queued")})->integer);
  }

  std::optional<Job> take(std::chrono::milliseconds timeout) override {
    if (!reader_) reader_ = std::make_unique<Connection>(host_, port_, options_.url);
    start_heartbeat();
    // First a job whose worker went silent, then a new one.
    auto reply = reader_->run({"XAUTOCLAIM", key("jobs"), "workers", worker_, std::to_string(options_.claim_after.count()),
                               "0-0", "COUNT", "1"});
    const redisReply* entries = reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2 ? reply->element[1] : nullptr;
    if (!entries || entries->elements == 0) {
      reply = reader_->run({"XREADGROUP", "GROUP", "workers", worker_, "COUNT", "1", "BLOCK",
                            std::to_string(timeout.count()), "STREAMS", key("jobs"), ">"});
      if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) return std::nullopt;
      entries = reply->element[0]->element[1];
      if (entries->elements == 0) return std::nullopt;
    }
    const redisReply* entry = entries->element[0];
    const std::string entry_id = text_of(entry->element[0]);
    std::string id;
    const redisReply* fields = entry->element[1];
    for (size_t i = 0; fields && i + 1 < fields->elements; i += 2) {
      if (text_of(fields->element[i]) == "id") id = text_of(fields->element[i + 1]);
    }
    std::lock_guard lock(mutex_);
    const auto job = main_->run({"HMGET", job_key(id), "kind", "payload", "finished"});
    if (id.empty() || job->element[1]->type == REDIS_REPLY_NIL || text_of(job->element[2]) == "1") {
      // Interrupted while queued, expired, or finished by a worker presumed dead: nothing to do.
      main_->run({"XACK", key("jobs"), "workers", entry_id});
      main_->run({"XDEL", key("jobs"), entry_id});
      return std::nullopt;
    }
    main_->run({"HSET", job_key(id), "state", "running", "worker", worker_});
    main_->run({"HINCRBY", job_key(id), "attempts", "1"});
    main_->run({"ZREM", key("queued"), id});
    main_->run({"ZADD", key("running"), std::to_string(now_ms()), id});
    {
      std::lock_guard held_lock(held_mutex_);
      held_[id] = entry_id;
    }
    Job out;
    out.id = id;
    out.kind = text_of(job->element[0]);
    out.payload = json::parse(text_of(job->element[1]), nullptr, false);
    return out;
  }

  void update(const std::string& id, const json& progress, const std::string& preview_png) override {
    std::lock_guard lock(mutex_);
    if (preview_png.empty()) {
      main_->run({"HSET", job_key(id), "progress", progress.dump()});
    } else {
      main_->run({"HSET", job_key(id), "progress", progress.dump(), "preview", preview_png});
    }
  }

  bool interrupted(const std::string& id) override {
    std::lock_guard lock(mutex_);
    return text_of(main_->run({"HGET", job_key(id), "interrupt"}).get()) == "1";
  }

  void finish(const std::string& id, const JobStatus& final_status) override {
    std::string entry_id;
    {
      std::lock_guard held_lock(held_mutex_);
      const auto found = held_.find(id);
      if (found != held_.end()) {
        entry_id = found->second;
        held_.erase(found);
      }
    }
    std::lock_guard lock(mutex_);
    // The first finish wins: a worker that was presumed dead and comes back changes nothing.
    if (main_->run({"HSETNX", job_key(id), "finished", "1"})->integer == 1) {
      std::vector<std::string> args{"HSET", job_key(id), "state", job_state_name(final_status.state), "finished_by", worker_};
      if (!final_status.result.is_null()) args.insert(args.end(), {"result", final_status.result.dump()});
      if (!final_status.error.empty()) {
        args.insert(args.end(), {"error", final_status.error, "error_status", std::to_string(final_status.error_status)});
      }
      main_->run(args);
      main_->run({"HDEL", job_key(id), "preview"});
      main_->run({"EXPIRE", job_key(id), std::to_string(options_.keep_finished.count())});
    }
    main_->run({"ZREM", key("running"), id});
    if (!entry_id.empty()) {
      main_->run({"XACK", key("jobs"), "workers", entry_id});
      main_->run({"XDEL", key("jobs"), entry_id});
    }
  }

 private:
  std::string key(const std::string& name) const { return options_.prefix + ":" + name; }
  std::string job_key(const std::string& id) const { return key("job:" + id); }

  JobStatus status_locked(const std::string& id) {
    JobStatus status;
    const auto reply = main_->run({"HGETALL", job_key(id)});
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) return status;
    std::map<std::string, std::string> fields;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) fields[text_of(reply->element[i])] = text_of(reply->element[i + 1]);
    const std::string state = fields["state"];
    for (const auto s : {JobState::Queued, JobState::Running, JobState::Done, JobState::Failed, JobState::Interrupted}) {
      if (state == job_state_name(s)) status.state = s;
    }
    if (!fields["progress"].empty()) status.progress = json::parse(fields["progress"], nullptr, false);
    status.preview_png = fields["preview"];
    if (!fields["result"].empty()) status.result = json::parse(fields["result"], nullptr, false);
    status.error = fields["error"];
    status.error_status = fields["error_status"].empty() ? 0 : std::stoi(fields["error_status"]);
    status.worker = fields.count("finished_by") ? fields["finished_by"] : fields["worker"];
    status.attempts = fields["attempts"].empty() ? 0 : std::stoi(fields["attempts"]);
    if (status.state == JobState::Queued) {
      const auto rank = main_->run({"ZRANK", key("queued"), id});
      status.ahead = static_cast<int>((rank->type == REDIS_REPLY_INTEGER ? rank->integer : 0) +
                                      main_->run({"ZCARD", key("running")})->integer);
    }
    return status;
  }

  // Keeps the stream entries of held jobs fresh, so no other worker claims them while this one lives.
  void start_heartbeat() {
    if (heartbeat_.joinable()) return;
    heartbeat_ = std::thread([this] {
      std::unique_ptr<Connection> connection;
      std::unique_lock lock(heartbeat_mutex_);
      while (!stopping_) {
        heartbeat_wake_.wait_for(lock, options_.claim_after / 4, [&] { return stopping_.load(); });
        std::vector<std::string> entries;
        {
          std::lock_guard held_lock(held_mutex_);
          for (const auto& [id, entry] : held_) entries.push_back(entry);
        }
        if (entries.empty()) continue;
        try {
          if (!connection) connection = std::make_unique<Connection>(host_, port_, options_.url);
          std::vector<std::string> args{"XCLAIM", key("jobs"), "workers", worker_, "0"};
          args.insert(args.end(), entries.begin(), entries.end());
          args.push_back("JUSTID");
          connection->run(args);
        } catch (const Error&) {
          connection.reset();  // try again next beat
        }
      }
    });
  }

  RedisQueueOptions options_;
  std::string host_;
  int port_ = 6379;
  std::string worker_;
  std::mutex mutex_;
  std::unique_ptr<Connection> main_;
  std::unique_ptr<Connection> reader_;  // the worker thread's, for the blocking read
  std::mutex held_mutex_;
  std::map<std::string, std::string> held_;  // job id -> stream entry
  std::atomic<bool> stopping_{false};
  std::mutex heartbeat_mutex_;
  std::condition_variable heartbeat_wake_;
  std::thread heartbeat_;
};

}  // namespace

std::unique_ptr<JobQueue> make_redis_queue(const RedisQueueOptions& options) { return std::make_unique<RedisQueue>(options); }

}  // namespace diffuse::server
