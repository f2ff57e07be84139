#include "fixture_runs.h"

#include <ATen/CPUGeneratorImpl.h>

#include "support/fixtures.h"

namespace diffuse::sampling::test {

at::Tensor FixtureRun::tensor(const std::string& file) const {
  return diffuse::test::read_reference(refs / file);
}

SamplerOptions FixtureRun::options() const {
  const auto& cli = json.at("cli");
  SamplerOptions options;
  options.sampler = cli.at("sampler").get<std::string>();
  if (!cli.at("schedule").is_null()) options.schedule = parse_sigma_schedule(cli.at("schedule").get<std::string>());
  if (!cli.at("timestep_spacing").is_null()) {
    options.timestep_spacing = parse_spacing(cli.at("timestep_spacing").get<std::string>());
  }
  options.eta = cli.at("eta").get<double>();
  options.steps = json.at("num_inference_steps").get<int>();
  return options;
}

SchedulerConfig FixtureRun::config() const {
  return SchedulerConfig::from_json(json.at("scheduler_info").at("config"));
}

std::vector<FixtureRun> all_fixture_runs() {
  std::vector<FixtureRun> runs;
  for (const std::string model : {"tiny-sd1", "tiny-sd2v"}) {
    const auto folder = diffuse::test::fixtures_dir() / model;
    const auto manifest = diffuse::test::read_json(folder / "manifest.json");
    for (const auto& run : manifest.at("runs")) runs.push_back({model, run, folder / "refs"});
  }
  return runs;
}

bool implemented(const std::string& sampler) {
  for (const auto& [name, description] : sampler_names()) {
    if (name == sampler) return true;
  }
  return false;
}

at::Generator seeded_generator(uint64_t seed) {
  return at::make_generator<at::CPUGeneratorImpl>(seed);
}

}  // namespace diffuse::sampling::test
