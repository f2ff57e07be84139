// Runs the built `diffuse` binary as a user would: the success path writes a PNG carrying its
// parameters; every bad input exits non-zero with one message naming the culprit and writes nothing.
#include <gtest/gtest.h>

#include <fstream>

#include "image/png_file.h"
#include "support/fixtures.h"
#include "support/run_diffuse.h"
#include "support/temp_dir.h"

namespace diffuse::cli {
namespace {

namespace fs = std::filesystem;
using test::fixtures_dir;

using test::Outcome;
using test::run_diffuse;

class GenerateCli : public test::TempDirTest {
 protected:
  std::string model() const { return (fixtures_dir() / "tiny-sd1/diffusers").string(); }
  fs::path out() const { return dir_ / "out.png"; }

  // Runs `generate` with a working base command line plus `extra`, which may override it.
  Outcome generate(std::vector<std::string> extra, const std::string& model_path = "") {
    std::vector<std::string> args{"generate", "-m", model_path.empty() ? model() : model_path,
                                  "-p",       "a photo of a cat",
                                  "--steps",  "2",
                                  "-o",       out().string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_diffuse(args);
  }

  // Non-zero exit, a message naming `culprit`, and no image.
  void expect_rejected(const Outcome& outcome, const std::string& culprit) {
    EXPECT_NE(outcome.exit_code, 0) << outcome.output;
    EXPECT_NE(outcome.output.find(culprit), std::string::npos) << "message does not name '" << culprit
                                                               << "': " << outcome.output;
    EXPECT_TRUE(fs::is_empty(dir_)) << "output left behind after: " << outcome.output;
  }

  fs::path write_file(const std::string& name, const std::string& bytes) const {
    std::ofstream(dir_ / name, std::ios::binary) << bytes;
    return dir_ / name;
  }

  static std::string read_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
};

TEST_F(GenerateCli, WritesPngWithParameters) {
  const auto outcome = generate({"-n", "blurry", "--seed", "7", "--cfg-scale", "6"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
  EXPECT_NE(outcome.output.find("step 2/2"), std::string::npos) << outcome.output;
  const auto png = image::read_png(out());
  EXPECT_EQ(png.width, 64);
  EXPECT_EQ(png.height, 64);
  EXPECT_EQ(png.channels, 3);
  ASSERT_TRUE(png.text.count("parameters"));
  EXPECT_EQ(png.text.at("parameters"),
            "a photo of a cat\nNegative prompt: blurry\n"
            "Steps: 2, Sampler: Euler, CFG scale: 6, Seed: 7, Size: 64x64, Model: diffusers");
}

TEST_F(GenerateCli, SingleFileWithTokenizerFlag) {
  const auto outcome = generate({"--tokenizer", (test::shared_dir() / "clip/bpe_simple_vocab_16e6.txt.gz").string(),
                                 "--sampler", "dpm++2m", "--schedule", "karras"},
                                (fixtures_dir() / "tiny-sd1/tiny-sd1.safetensors").string());
  ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
  const auto png = image::read_png(out());
  EXPECT_NE(png.text.at("parameters").find("Sampler: DPM++ 2M Karras"), std::string::npos);
  EXPECT_NE(png.text.at("parameters").find("Model: tiny-sd1"), std::string::npos);
}

// Legacy .ckpt files (zip and pre-1.6 formats), read without running their pickles, draw the very image
// of the safetensors file they were saved from.
TEST_F(GenerateCli, CheckpointsDrawTheSafetensorsImage) {
  const auto tokenizer = (test::shared_dir() / "clip/bpe_simple_vocab_16e6.txt.gz").string();
  at::Tensor reference;
  for (const char* name : {"tiny-sd1.safetensors", "tiny-sd1.ckpt", "tiny-sd1-legacy.ckpt"}) {
    SCOPED_TRACE(name);
    const auto outcome = generate({"--tokenizer", tokenizer, "--seed", "11"}, (fixtures_dir() / "tiny-sd1" / name).string());
    ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
    const auto pixels = image::read_png(out()).pixels;
    if (!reference.defined()) {
      reference = pixels;
    } else {
      EXPECT_TRUE(pixels.equal(reference));
    }
  }
}

TEST_F(GenerateCli, BatchCountWritesOneImagePerSeed) {
  const auto outcome = generate({"--seed", "7", "--batch-count", "2"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
  const auto first = image::read_png(dir_ / "out-7.png");
  const auto second = image::read_png(dir_ / "out-8.png");
  EXPECT_NE(first.text.at("parameters").find("Seed: 7,"), std::string::npos);
  EXPECT_NE(second.text.at("parameters").find("Seed: 8,"), std::string::npos);
  EXPECT_FALSE(first.pixels.equal(second.pixels));
  EXPECT_FALSE(fs::exists(out()));
}

TEST_F(GenerateCli, SameSeedSameImage) {
  ASSERT_EQ(generate({"--seed", "3", "-o", (dir_ / "a.png").string()}).exit_code, 0);
  ASSERT_EQ(generate({"--seed", "3", "-o", (dir_ / "b.png").string()}).exit_code, 0);
  EXPECT_TRUE(image::read_png(dir_ / "a.png").pixels.equal(image::read_png(dir_ / "b.png").pixels));
}

TEST_F(GenerateCli, RejectsMissingModel) {
  expect_rejected(generate({}, "/nonexistent/model.safetensors"), "/nonexistent/model.safetensors");
}

TEST_F(GenerateCli, RejectsFolderThatIsNoModel) {
  const auto folder = fs::temp_directory_path() / "diffuse-cli-not-a-model";
  fs::create_directories(folder);
  expect_rejected(generate({}, folder.string()), folder.string());
  fs::remove_all(folder);
}

TEST_F(GenerateCli, RejectsFileThatIsNotSafetensors) {
  const auto bogus = write_file("bogus.safetensors", "this is not a checkpoint at all");
  const auto outcome = generate({"-o", (dir_ / "never.png").string()}, bogus.string());
  EXPECT_NE(outcome.exit_code, 0);
  EXPECT_NE(outcome.output.find("bogus.safetensors"), std::string::npos) << outcome.output;
  EXPECT_FALSE(fs::exists(dir_ / "never.png"));
}

TEST_F(GenerateCli, RejectsTruncatedFile) {
  const auto bytes = read_bytes(fixtures_dir() / "tiny-sd1/tiny-sd1.safetensors");
  const auto truncated = write_file("truncated.safetensors", bytes.substr(0, bytes.size() / 2));
  const auto outcome = generate({"-o", (dir_ / "never.png").string()}, truncated.string());
  EXPECT_NE(outcome.exit_code, 0);
  EXPECT_NE(outcome.output.find("truncated.safetensors"), std::string::npos) << outcome.output;
  EXPECT_FALSE(fs::exists(dir_ / "never.png"));
}

TEST_F(GenerateCli, RejectsTensorWithWrongShape) {
  // Same bytes, but one VAE tensor declared [32,128,3,3] instead of [64,64,3,3].
  const auto bytes = read_bytes(fixtures_dir() / "tiny-sd1/tiny-sd1.safetensors");
  uint64_t header_length = 0;
  std::memcpy(&header_length, bytes.data(), 8);
  auto header = nlohmann::json::parse(bytes.substr(8, header_length));
  const std::string tensor = "first_stage_model.decoder.mid.block_1.conv1.weight";
  ASSERT_EQ(header.at(tensor).at("shape"), nlohmann::json({64, 64, 3, 3}));
  header[tensor]["shape"] = {32, 128, 3, 3};
  const auto new_header = header.dump();
  const uint64_t new_length = new_header.size();
  std::string patched(reinterpret_cast<const char*>(&new_length), 8);
  patched += new_header + bytes.substr(8 + header_length);
  const auto file = write_file("reshaped.safetensors", patched);
  // The tiny model's attention heads come from the original config beside the checkpoint.
  fs::copy_file(fixtures_dir() / "tiny-sd1/ldm_config.json", dir_ / "ldm_config.json");
  const auto outcome = generate({"--tokenizer", (test::shared_dir() / "clip").string(),
                                 "-o", (dir_ / "never.png").string()}, file.string());
  EXPECT_NE(outcome.exit_code, 0);
  EXPECT_NE(outcome.output.find("reshaped.safetensors: tensor '" + tensor + "' has shape [32,128,3,3], expected "
                                "[64,64,3,3]"), std::string::npos) << outcome.output;
  EXPECT_FALSE(fs::exists(dir_ / "never.png"));
}

TEST_F(GenerateCli, RejectsUnknownSampler) {
  expect_rejected(generate({"--sampler", "bogus"}), "--sampler: 'bogus' is not one of euler, euler_a");
}

TEST_F(GenerateCli, RejectsUnknownSchedule) {
  expect_rejected(generate({"--schedule", "bogus"}), "--schedule: 'bogus' is not one of default, karras");
}

TEST_F(GenerateCli, RejectsWidthNotMultipleOf8) { expect_rejected(generate({"-W", "100"}), "--width: 100"); }

TEST_F(GenerateCli, RejectsHeightNotMultipleOf8) { expect_rejected(generate({"-H", "63"}), "--height: 63"); }

TEST_F(GenerateCli, RejectsZeroSteps) { expect_rejected(generate({"--steps", "0"}), "--steps: must be at least 1"); }

// The library names request fields; the command line says them as its flags, once each.
TEST_F(GenerateCli, NamesEveryBadValueByItsFlag) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--cfg-scale", "-2"}, "diffuse: error: --cfg-scale: -2 must be a finite number >= 0"},
      {{"--batch-count", "0"}, "diffuse: error: --batch-count: 0 must be at least 1"},
      {{"--timestep-spacing", "even"}, "diffuse: error: --timestep-spacing: 'even' is not one of leading, trailing, linspace"},
      {{"--prediction", "x0"}, "diffuse: error: --prediction: 'x0' is not one of epsilon, v_prediction"},
      {{"--eta", "0.3"}, "diffuse: error: --eta: applies only to samplers ddim, tcd, not to 'euler'"},
      {{"--precision", "fp16"}, "diffuse: error: --precision: 'fp16' is not fp32 or bf16"},
      {{"--preview", "fast"}, "diffuse: error: --preview: 'fast' is not one of linear, vae, taesd, taesd:PATH"},
      {{"-o", "out.jpg"}, "diffuse: error: --output: 'out.jpg' must end in .png"},
      {{"--steps", "1000"}, "diffuse: error: --steps: must be below the model's 1000 training timesteps, got 1000"},
      {{"--clip-skip", "0"}, "diffuse: error: --clip-skip: 0 must be at least 1 (1: the last layer)"},
      {{"--original-size", "64x64"}, "diffuse: error: --original-size: '64x64' is not W,H (two whole numbers and a comma)"},
      {{"--crop-coords", "1,2,3"}, "diffuse: error: --crop-coords: '1,2,3' is not X,Y (two whole numbers and a comma)"},
      {{"--target-size", "64,64"}, "diffuse: error: --target-size: only SDXL models take size conditioning"},
  };
  for (const auto& [flags, message] : cases) {
    const auto outcome = generate(flags);
    EXPECT_NE(outcome.exit_code, 0) << outcome.output;
    EXPECT_NE(outcome.output.find(message + "\n"), std::string::npos) << outcome.output;
    EXPECT_TRUE(fs::is_empty(dir_)) << outcome.output;
  }
}

// Every phase says it has begun before it has finished anything, and a size far from the model's
// is warned about before the first step.
TEST_F(GenerateCli, ReportsEveryPhaseAndWarnsAboutFarSizes) {
  const auto outcome = generate({"-W", "256", "-H", "256", "--steps", "1"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
  const auto at = [&](const std::string& text) { return outcome.output.find(text); };
  for (const auto* line : {"loading 0/3 components", "loading 3/3 components", "encoding 0/2 prompts", "step 0/1",
                           "ETA after the first step", "step 1/1", "decoding 0/1 tiles", "decoding 1/1 tiles"}) {
    EXPECT_NE(at(line), std::string::npos) << line << " in: " << outcome.output;
  }
  EXPECT_NE(at("warning: 256x256 is 16x the area the model was trained at (64x64)"), std::string::npos) << outcome.output;
  EXPECT_LT(at("loading 3/3"), at("warning: 256x256"));
  EXPECT_LT(at("warning: 256x256"), at("step 0/1"));
  EXPECT_LT(at("decoding 1/1 tiles"), at("wrote "));
}

TEST_F(GenerateCli, RejectsNonNumericSeed) { expect_rejected(generate({"--seed", "abc"}), "--seed"); }

TEST_F(GenerateCli, RejectsOutputInMissingFolder) {
  const auto outcome = generate({"-o", "/nonexistent-folder/out.png"});
  EXPECT_NE(outcome.exit_code, 0);
  EXPECT_NE(outcome.output.find("/nonexistent-folder"), std::string::npos) << outcome.output;
}

}  // namespace
}  // namespace diffuse::cli
