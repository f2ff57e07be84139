#pragma once
// The job queue shared by several `diffuse serve` processes through Redis (Debian redis-server):
// jobs are entries of one stream read by one consumer group, so each goes to one worker; a worker
// keeps the jobs it holds alive with a heartbeat, and a job whose worker has gone silent for
// `claim_after` is claimed again by another (XAUTOCLAIM). Each job's state, progress, preview and
// result live in a hash every front can read, so any front answers for any job; finished jobs
// expire after `keep_finished`. Only the first finish of a job counts (a worker that was presumed
// dead and comes back cannot finish it twice).
#include <chrono>
#include <memory>
#include <string>

#include "server/job_queue.h"

namespace diffuse::server {

struct RedisQueueOptions {
  std::string url;                     // redis://HOST:PORT
  std::string prefix = "diffuse";      // key prefix: several deployments may share one Redis
  std::chrono::milliseconds claim_after{30000};
  std::chrono::seconds keep_finished{3600};
  std::string worker_name;             // empty: host:pid
};

// Connects (throws diffuse::Error naming the URL when it cannot) and creates the group if needed.
std::unique_ptr<JobQueue> make_redis_queue(const RedisQueueOptions& options);

}  // namespace diffuse::server
