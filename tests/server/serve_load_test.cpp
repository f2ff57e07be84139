// 16 clients x 10 requests at once on the tiny model: every request answered with the image the same
// request gets alone, no job lost, and the server's memory flat once warm.
#include <httplib.h>

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "support/fixtures.h"
#include "support/server_process.h"

namespace diffuse {
namespace {

using nlohmann::json;

// Resident memory of a process, from /proc (kB).
long resident_kb(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

json request_for(int client, int index) {
  return {{"prompt", index % 2 ? "a red circle" : "a blue square"}, {"seed", client * 100 + index}, {"steps", 2},
          {"cfg_scale", 5}, {"width", 64}, {"height", 64}, {"sampler_name", index % 3 ? "Euler" : "DPM++ 2M"}};
}

std::string first_image(httplib::Client& client, const json& request) {
  const auto response = client.Post("/sdapi/v1/txt2img", request.dump(), "application/json");
  if (!response || response->status != 200) return "";
  return json::parse(response->body).at("images").at(0).get<std::string>();
}

TEST(ServeLoad, SixteenClientsTimesTenRequestsAllAnsweredAsAlone) {
  test::ServerProcess server({"-m", (test::fixtures_dir() / "tiny-sd1/diffusers").string(), "--precision", "fp32"});
  constexpr int kClients = 16, kRequests = 10;
  // Alone, one after another: what each request must give. Also warms the server up.
  std::map<std::pair<int, int>, std::string> expected;
  {
    httplib::Client client(server.host(), server.port());
    client.set_read_timeout(120, 0);
    for (int c = 0; c < kClients; ++c) {
      for (int i = 0; i < kRequests; ++i) expected[{c, i}] = first_image(client, request_for(c, i));
    }
  }
  const long warm_kb = resident_kb(server.pid());

  std::mutex mutex;
  std::map<std::pair<int, int>, std::string> got;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      httplib::Client client(server.host(), server.port());
      client.set_read_timeout(300, 0);
      for (int i = 0; i < kRequests; ++i) {
        auto image = first_image(client, request_for(c, i));
        std::lock_guard lock(mutex);
        got[{c, i}] = std::move(image);
      }
    });
  }
  for (auto& thread : clients) thread.join();
  const long loaded_kb = resident_kb(server.pid());

  ASSERT_EQ(got.size(), size_t{kClients * kRequests});
  int answered = 0, identical = 0;
  for (const auto& [key, image] : got) {
    answered += !image.empty();
    identical += !image.empty() && image == expected.at(key);
  }
  EXPECT_EQ(answered, kClients * kRequests);
  EXPECT_EQ(identical, kClients * kRequests);
  std::printf("resident memory: %ld MB warm, %ld MB after %d requests\n", warm_kb / 1024, loaded_kb / 1024,
              kClients * kRequests);
  EXPECT_LT(loaded_kb - warm_kb, 64 * 1024);  // flat: finished jobs are kept, but only the last 512
  EXPECT_TRUE(server.alive());
}

}  // namespace
}  // namespace diffuse
