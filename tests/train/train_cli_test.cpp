// A short training run through the binary: the loss falls, the folder loads and generates, the same
// seed gives the same loss log (also when the run is stopped and resumed), bad input is refused.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>
#include <sstream>

#include "image/png_file.h"
#include "support/temp_dir.h"
#include "support/run_diffuse.h"
#include "train/shapes_tokenizer.h"
#include "train/training_log.h"

namespace diffuse::train {
namespace {

namespace fs = std::filesystem;
using diffuse::test::run_diffuse;

// Small enough for CI (seconds), large enough for the loss to fall clearly.
std::vector<std::string> short_run(const fs::path& output) {
  return {"train", "-o", output.string(), "--seed", "5", "--threads", "1", "--shapes-count", "64",
          "--resolution", "32", "--vae-channels", "8,16", "--vae-steps", "60", "--vae-batch", "8",
          "--text-hidden", "32", "--text-layers", "1", "--text-heads", "2", "--max-tokens", "16",
          "--unet-channels", "32,32", "--unet-heads", "2", "--unet-steps", "80", "--unet-batch", "8",
          "--checkpoint-every", "25"};
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

double mean_of(const std::vector<double>& v, size_t begin, size_t end) {
  double sum = 0;
  for (size_t i = begin; i < end; ++i) sum += v[i];
  return sum / static_cast<double>(end - begin);
}

using TrainCli = diffuse::test::TempDirTest;

TEST_F(TrainCli, ShortRunLearnsWritesALoadableModelAndRepeatsExactly) {
  const auto first = dir_ / "first";
  const auto run = run_diffuse(short_run(first));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("ETA"), std::string::npos) << run.output;
  for (const char* file : {"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                           "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
                           "tokenizer/vocab.json", "tokenizer/merges.txt", "scheduler/scheduler_config.json",
                           "loss.csv", "loss.png", "training.json"}) {
    EXPECT_TRUE(fs::is_regular_file(first / file)) << file;
  }
  EXPECT_FALSE(fs::exists(first / "checkpoint"));

  const auto log = read_loss_csv(first / "loss.csv");
  ASSERT_EQ(log.vae.size(), 60u);
  ASSERT_EQ(log.diffusion.size(), 80u);
  EXPECT_LT(mean_of(log.vae, 50, 60), 0.85 * mean_of(log.vae, 0, 10));
  EXPECT_LT(mean_of(log.diffusion, 60, 80), 0.8 * mean_of(log.diffusion, 0, 20));
  const auto plot = image::read_png(first / "loss.png");
  EXPECT_EQ(plot.width, 720);

  const auto image = dir_ / "out.png";
  const auto generated = run_diffuse({"generate", "-m", first.string(), "-p", "a large red circle on a blue background, on the left",
                                      "--steps", "4", "-o", image.string()});
  ASSERT_EQ(generated.exit_code, 0) << generated.output;
  const auto png = image::read_png(image);
  EXPECT_EQ(png.width, 32);
  EXPECT_EQ(png.height, 32);

  // train's export and convert write folders through one writer: the trained folder, converted to a
  // single file and back to a folder, has the same configs (every key both write, the same value) and
  // model index, and both folders draw the same picture.
  const auto single = dir_ / "single.safetensors", back = dir_ / "back";
  fs::copy(first / "tokenizer", dir_ / "tokenizer");
  const auto to_file = run_diffuse({"convert", first.string(), single.string()});
  ASSERT_EQ(to_file.exit_code, 0) << to_file.output;
  const auto to_folder = run_diffuse({"convert", single.string(), back.string()});
  ASSERT_EQ(to_folder.exit_code, 0) << to_folder.output;
  for (const char* file : {"unet/config.json", "vae/config.json", "text_encoder/config.json", "model_index.json",
                           "scheduler/scheduler_config.json"}) {
    const auto trained = nlohmann::json::parse(read_text(first / file));
    const auto converted = nlohmann::json::parse(read_text(back / file));
    int shared = 0;
    for (const auto& [key, value] : trained.items()) {
      if (!converted.contains(key)) continue;
      ++shared;
      EXPECT_EQ(converted.at(key), value) << file << ": " << key;
    }
    EXPECT_GE(shared, 5) << file;
  }
  const auto redrawn = dir_ / "back.png";
  const auto generated_back = run_diffuse({"generate", "-m", back.string(), "-p",
                                           "a large red circle on a blue background, on the left", "--steps", "4",
                                           "-o", redrawn.string()});
  ASSERT_EQ(generated_back.exit_code, 0) << generated_back.output;
  EXPECT_TRUE(at::equal(image::read_png(redrawn).pixels, png.pixels));

  // The tokenizer is derived data: rebuilt from training.json alone, it is the trained one.
  const auto rebuilt = dir_ / "rebuilt";
  fs::create_directories(rebuilt);
  fs::copy_file(first / "training.json", rebuilt / "training.json");
  restore_shapes_tokenizer(rebuilt);
  for (const char* file : {"vocab.json", "merges.txt", "tokenizer_config.json"}) {
    EXPECT_EQ(read_text(rebuilt / "tokenizer" / file), read_text(first / "tokenizer" / file)) << file;
  }

  // The same seed again, stopped part-way through the diffusion stage and resumed: the same log.
  const auto second = dir_ / "second";
  auto stopped_args = short_run(second);
  stopped_args.insert(stopped_args.end(), {"--stop-after", "100"});
  const auto stopped = run_diffuse(stopped_args);
  ASSERT_EQ(stopped.exit_code, 0) << stopped.output;
  EXPECT_NE(stopped.output.find("--resume"), std::string::npos) << stopped.output;
  EXPECT_TRUE(fs::exists(second / "checkpoint" / "state.json"));
  const auto again = run_diffuse(short_run(second));
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.output.find("--resume: not given, but"), std::string::npos) << again.output;
  const auto resumed = run_diffuse({"train", "-o", second.string(), "--resume", "--threads", "1"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(read_text(second / "loss.csv"), read_text(first / "loss.csv"));
  EXPECT_EQ(read_text(second / "unet/diffusion_pytorch_model.safetensors"),
            read_text(first / "unet/diffusion_pytorch_model.safetensors"));
}

TEST_F(TrainCli, BadInputIsRefusedWithAMessage) {
  fs::create_directories(dir_ / "empty");
  auto run = run_diffuse({"train", "-d", (dir_ / "empty").string(), "-o", (dir_ / "m").string()});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("no .png images"), std::string::npos) << run.output;

  run = run_diffuse({"train", "-o", (dir_ / "nothing").string(), "--resume"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("no checkpoint to resume"), std::string::npos) << run.output;

  run = run_diffuse({"train", "-o", (dir_ / "m2").string(), "--unet-channels", "48,96"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("--unet-channels"), std::string::npos) << run.output;
}

}  // namespace
}  // namespace diffuse::train
