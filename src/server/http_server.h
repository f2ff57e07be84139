#pragma once
// `diffuse serve`'s HTTP front (cpp-httplib): AUTOMATIC1111's /sdapi/v1 endpoints, diffuse's own job
// endpoints (/diffuse/v1/jobs, used by the web page), and the page itself. It only talks to a
// JobQueue: jobs are computed by whichever worker takes them, here or on another machine.
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/a1111_api.h"
#include "server/job_queue.h"

namespace diffuse::server {

struct FrontOptions {
  std::string host = "127.0.0.1";
  int port = 7860;  // 0: any free port (bound_port() says which)
  ServeLimits limits;
  std::string model_name;   // as /sdapi/v1/sd-models and the infotexts name it
  std::string model_path;
  std::vector<std::filesystem::path> controlnet_dirs;  // what /controlnet/model_list lists
  // Checks a payload before it is queued, so bad fields come back at once (throws InvalidParameter).
  std::function<void(const nlohmann::json& payload, bool img2img)> check;
};

class HttpFront {
 public:
  HttpFront(JobQueue& queue, FrontOptions options);
  ~HttpFront();
  // Binds (throws diffuse::Error naming host:port when it cannot) and returns the port.
  int bind();
  void serve();  // blocks until stop()
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace diffuse::server
