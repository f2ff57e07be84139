// 16 clients x 4 requests at once on the tiny model (x 10 with DIFFUSE_LONG_TESTS=1): every request
// answered with the image the same request gets alone, no job lost, and the server's memory flat once
// warm; connections made while the server is stalled wait for it.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <csignal>
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
  if (!response) {
    std::fprintf(stderr, "no response: %s\n", httplib::to_string(response.error()).c_str());
    return "";
  }
  if (response->status != 200) {
    std::fprintf(stderr, "status %d: %s\n", response->status, response->body.c_str());
    return "";
  }
  return json::parse(response->body).at("images").at(0).get<std::string>();
}

TEST(ServeLoad, SixteenClientsAtOnceAllAnsweredAsAlone) {
  test::ServerProcess server({"-m", (test::fixtures_dir() / "tiny-sd1/diffusers").string(), "--precision", "fp32"});
  const int kClients = 16, kRequests = test::long_run() ? 10 : 4;
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

  ASSERT_EQ(got.size(), static_cast<size_t>(kClients * kRequests));
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

// Connects to the server without waiting more than a second for the handshake; -1 if it did not complete.
int connect_within_a_second(const std::string& host, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, host.c_str(), &address.sin_addr);
  ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  pollfd writable{fd, POLLOUT, 0};
  int error = -1;
  socklen_t length = sizeof error;
  if (::poll(&writable, 1, 1000) == 1) ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
  if (error == 0) return fd;
  ::close(fd);
  return -1;
}

// The status line of a GET on a connected socket, read until the server closes it.
std::string status_line_of_get(int fd, const std::string& path) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) return "";
  std::string reply;
  char buffer[4096];
  for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) reply.append(buffer, static_cast<size_t>(n));
  return reply.substr(0, reply.find("\r\n"));
}

// Clients that connect while the server cannot accept (a busy machine; here the process is stopped) wait in
// the kernel's listen queue. Debian's httplib listens with a backlog of 5: the rest had their handshakes
// dropped, retried seconds later, and under load some requests were never answered.
TEST(ServeLoad, ConnectionsMadeWhileTheServerIsStalledAreQueuedAndAnswered) {
  test::ServerProcess server({"-m", (test::fixtures_dir() / "tiny-sd1/diffusers").string(), "--precision", "fp32"});
  constexpr int kClients = 64;
  ::kill(server.pid(), SIGSTOP);
  std::vector<int> connected;
  for (int c = 0; c < kClients; ++c) {
    if (const int fd = connect_within_a_second(server.host(), server.port()); fd >= 0) connected.push_back(fd);
  }
  ::kill(server.pid(), SIGCONT);
  EXPECT_EQ(connected.size(), size_t{kClients});
  int answered = 0;
  for (const int fd : connected) {
    answered += status_line_of_get(fd, "/sdapi/v1/samplers") == "HTTP/1.1 200 OK";
    ::close(fd);
  }
  EXPECT_EQ(answered, kClients);
}

}  // namespace
}  // namespace diffuse
