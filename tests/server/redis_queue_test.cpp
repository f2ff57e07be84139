// Three `diffuse serve --queue redis://...` workers on one local redis-server: 20 jobs (50 with
// DIFFUSE_LONG_TESTS=1) submitted
// through one front, one worker killed mid-job; every job completes exactly once, any front answers
// for any job, and the images are those of a single process.
#include <hiredis/hiredis.h>
#include <httplib.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "support/fixtures.h"
#include "support/run_diffuse.h"
#include "support/server_process.h"

namespace diffuse {
namespace {

using nlohmann::json;

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

// redis-server on a free loopback port, nothing saved to disk, stopped with the object.
class RedisProcess {
 public:
  RedisProcess() : port_(free_port()) {
    pid_ = ::fork();
    if (pid_ == 0) {
      const int quiet = ::open("/dev/null", O_WRONLY);
      ::dup2(quiet, STDOUT_FILENO);
      ::dup2(quiet, STDERR_FILENO);
      ::execlp("redis-server", "redis-server", "--port", std::to_string(port_).c_str(), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--loglevel", "warning", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 100; ++i) {
      redisContext* context = redisConnect("127.0.0.1", port_);
      const bool up = context && !context->err;
      if (context) redisFree(context);
      if (up) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    throw std::runtime_error("redis-server did not start (scripts/setup.sh installs it)");
  }
  ~RedisProcess() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

 private:
  int port_;
  pid_t pid_ = -1;
};

// Long enough (steps) that a worker can be caught in the middle of a job.
json payload_of(int i) {
  return {{"prompt", i % 2 ? "a red circle" : "a blue square"}, {"seed", 1000 + i}, {"steps", test::long_run() ? 12 : 8},
          {"width", 64}, {"height", 64}, {"cfg_scale", 6}};
}

json get(const test::ServerProcess& server, const std::string& path) {
  httplib::Client client(server.host(), server.port());
  const auto response = client.Get(path.c_str());
  if (!response || response->status != 200) return nullptr;
  return json::parse(response->body);
}

TEST(RedisQueue, AnUnreachableRedisIsNamedBeforeTheModelLoads) {
  const std::string url = "redis://127.0.0.1:" + std::to_string(free_port());  // nothing listens there
  const std::string model = (test::fixtures_dir() / "tiny-sd1/diffusers").string();
  const auto outcome = test::run_diffuse({"serve", "-m", model, "--port", "0", "--queue", url}, 60);
  EXPECT_EQ(outcome.exit_code, 1) << outcome.output;
  EXPECT_NE(outcome.output.find("diffuse: error: " + url + ": cannot connect to Redis (Connection refused)"),
            std::string::npos)
      << outcome.output;
  EXPECT_EQ(outcome.output.find("loading "), std::string::npos) << outcome.output;
}

TEST(RedisQueue, ThreeWorkersOneKilledEachJobOnceWithTheSingleProcessImages) {
  const std::string model = (test::fixtures_dir() / "tiny-sd1/diffusers").string();
  const int kJobs = test::long_run() ? 50 : 20;

  // What a single process gives for each job.
  std::vector<std::string> expected;
  {
    // The workers run on one thread each (three share two cores): so does the reference, since the
    // order of fp32 sums follows the thread count.
    test::ServerProcess alone({"-m", model, "--precision", "fp32", "--threads", "1"});
    httplib::Client client(alone.host(), alone.port());
    client.set_read_timeout(120, 0);
    for (int i = 0; i < kJobs; ++i) {
      const auto response = client.Post("/sdapi/v1/txt2img", payload_of(i).dump(), "application/json");
      ASSERT_TRUE(response && response->status == 200);
      expected.push_back(json::parse(response->body).at("images").at(0));
    }
  }

  RedisProcess redis;
  std::vector<std::unique_ptr<test::ServerProcess>> workers;
  for (int w = 0; w < 3; ++w) {
    workers.push_back(std::make_unique<test::ServerProcess>(std::vector<std::string>{
        "-m", model, "--precision", "fp32", "--threads", "1", "--queue", redis.url(), "--queue-claim-after", "2"}));
  }
  std::vector<std::string> ids;
  {
    httplib::Client front(workers[0]->host(), workers[0]->port());
    for (int i = 0; i < kJobs; ++i) {
      auto body = payload_of(i);
      body["kind"] = "txt2img";
      const auto response = front.Post("/diffuse/v1/jobs", body.dump(), "application/json");
      ASSERT_TRUE(response && response->status == 202);
      ids.push_back(json::parse(response->body).at("id"));
    }
  }

  // Kill worker 1 while it computes a job (its pid is in the job's worker name).
  const std::string victim = ":" + std::to_string(workers[1]->pid());
  std::string killed_job;
  for (int tries = 0; tries < 2000 && killed_job.empty(); ++tries) {
    for (const auto& id : ids) {
      const auto job = get(*workers[2], "/diffuse/v1/jobs/" + id + "?preview=false");
      if (!job.is_null() && job.at("state") == "running" && job.value("worker", "").find(victim) != std::string::npos &&
          job.contains("progress") && job.at("progress").value("step", 0) > 0) {
        killed_job = id;
        break;
      }
    }
    if (killed_job.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_FALSE(killed_job.empty()) << "worker 1 never held a job";
  workers[1]->kill_now();

  // Every job finishes, read through a front that submitted none of them.
  std::map<std::string, json> finished;
  for (int tries = 0; tries < 1200 && finished.size() < ids.size(); ++tries) {
    for (const auto& id : ids) {
      if (finished.count(id)) continue;
      const auto job = get(*workers[2], "/diffuse/v1/jobs/" + id + "?preview=false");
      if (!job.is_null() && job.at("state") != "queued" && job.at("state") != "running") finished[id] = job;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(finished.size(), ids.size());
  int same = 0, retried = 0;
  for (int i = 0; i < kJobs; ++i) {
    const auto& job = finished.at(ids[i]);
    EXPECT_EQ(job.at("state"), "done") << ids[i];
    ASSERT_EQ(job.at("result").at("images").size(), 1u);
    same += job.at("result").at("images").at(0) == expected[i];
    retried += job.at("attempts").get<int>() > 1;
    EXPECT_EQ(job.at("worker").get<std::string>().find(victim), std::string::npos) << "finished by the dead worker";
  }
  EXPECT_EQ(same, kJobs);
  EXPECT_GE(retried, 1);
  EXPECT_EQ(finished.at(killed_job).at("attempts"), 2);
  std::printf("%d jobs on 3 workers, worker 1 killed during %s: all done, %d taken again\n", kJobs, killed_job.c_str(),
              retried);
}

}  // namespace
}  // namespace diffuse
