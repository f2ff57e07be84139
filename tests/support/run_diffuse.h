// Runs the built `diffuse` binary with arguments, as a user would, collecting its output.
#pragma once
#include <sys/wait.h>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/fixtures.h"

namespace diffuse::test {

struct Outcome {
  int exit_code;
  std::string output;  // stdout and stderr together
};

inline std::string shell_quote(const std::string& arg) {
  std::string quoted = "'";
  for (char c : arg) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// With a time limit, a run that would not end (a server) is stopped and exits 124, as under `timeout`.
inline Outcome run_diffuse(const std::vector<std::string>& args, int limit_seconds = 0) {
  std::string command = shell_quote(diffuse_binary().string());
  if (limit_seconds > 0) command = "timeout " + std::to_string(limit_seconds) + " " + command;
  for (const auto& arg : args) command += " " + shell_quote(arg);
  command += " 2>&1 </dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run " + command);
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

}  // namespace diffuse::test
