// Reads the reference runs of the tiny fixture models (../shared/fixtures/<model>/manifest.json).
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "sampling/sampling.h"

namespace diffuse::sampling::test {

struct FixtureRun {
  std::string model;  // "tiny-sd1"
  nlohmann::json json;
  std::filesystem::path refs;  // the folder its .bin files are in

  std::string id() const { return json.at("id").get<std::string>(); }
  at::Tensor tensor(const std::string& file) const;
  // The engine options the run records under `cli`, with its step count.
  SamplerOptions options() const;
  SchedulerConfig config() const;  // from scheduler_info.config
};

// Every run of tiny-sd1 and tiny-sd2v.
std::vector<FixtureRun> all_fixture_runs();

bool implemented(const std::string& sampler);

// at::randn through a fresh CPU generator seeded like torch.Generator().manual_seed(seed).
at::Generator seeded_generator(uint64_t seed);

}  // namespace diffuse::sampling::test
