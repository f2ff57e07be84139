// The explaining commands run as a user runs them: inspect, tokens, image-numbers and
// generate --save-steps, on the tiny fixture model.
#include <gtest/gtest.h>

#include <cstdio>
#include <sys/wait.h>

#include "image/animated_png.h"
#include "image/png_file.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"

namespace diffuse::cli {
namespace {

namespace fs = std::filesystem;
using test::fixtures_dir;

struct Outcome {
  int exit_code;
  std::string output;
};

std::string quote(const std::string& arg) {
  std::string quoted = "'";
  for (char c : arg) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// stdout only when `with_stderr` is false, so JSON and CSV can be parsed.
Outcome run_diffuse(const std::vector<std::string>& args, bool with_stderr = true) {
  std::string command = quote(test::diffuse_binary().string());
  for (const auto& arg : args) command += " " + quote(arg);
  command += with_stderr ? " 2>&1 </dev/null" : " 2>/dev/null </dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run " + command);
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

std::string tiny_model() { return (fixtures_dir() / "tiny-sd1/diffusers").string(); }

TEST(InspectCli, TablesAndJsonAgree) {
  const auto text = run_diffuse({"inspect", tiny_model()});
  ASSERT_EQ(text.exit_code, 0) << text.output;
  EXPECT_NE(text.output.find("\n  conv_in.weight"), std::string::npos) << "no tensor list";
  EXPECT_NE(text.output.find("down_blocks.0.resnets.0.conv1.weight"), std::string::npos);
  EXPECT_NE(text.output.find("1,427,012"), std::string::npos) << "UNet total missing";
  EXPECT_NE(text.output.find("2 or more dimensions"), std::string::npos) << "matrix definition missing";
  EXPECT_NE(text.output.find("family sd1"), std::string::npos);
  const auto json_run = run_diffuse({"inspect", "--json", tiny_model()}, false);
  ASSERT_EQ(json_run.exit_code, 0);
  const auto json = nlohmann::json::parse(json_run.output);
  EXPECT_EQ(json.at("total").at("parameters").get<int64_t>(), 1617529 + 1427012 + 658375);
  EXPECT_EQ(json.at("total").at("tensor_count").get<int64_t>(), 512);
}

TEST(InspectCli, MissingModelIsNamed) {
  const auto outcome = run_diffuse({"inspect", "/nonexistent/model"});
  EXPECT_NE(outcome.exit_code, 0);
  EXPECT_NE(outcome.output.find("/nonexistent/model"), std::string::npos) << outcome.output;
}

TEST(TokensCli, TokenizerAloneAndWithModel) {
  const auto ids = run_diffuse({"tokens", "--tokenizer", (fixtures_dir() / "tiny-sd1/diffusers/tokenizer").string(),
                                "a photo of a cat"});
  ASSERT_EQ(ids.exit_code, 0) << ids.output;
  EXPECT_NE(ids.output.find("1125  photo</w>"), std::string::npos) << ids.output;
  EXPECT_NE(ids.output.find("49406"), std::string::npos);
  EXPECT_NE(ids.output.find("padding: 70 x id 49407"), std::string::npos) << ids.output;
  const auto numbers = run_diffuse({"tokens", "-m", tiny_model(), "a photo of a cat"});
  ASSERT_EQ(numbers.exit_code, 0) << numbers.output;
  EXPECT_NE(numbers.output.find("embedding row"), std::string::npos);
  EXPECT_NE(numbers.output.find("encoder output"), std::string::npos);
  const auto csv = run_diffuse({"tokens", "-m", tiny_model(), "--full", "a photo of a cat"}, false);
  ASSERT_EQ(csv.exit_code, 0);
  EXPECT_EQ(std::count(csv.output.begin(), csv.output.end(), '\n'), 78);
  const auto neither = run_diffuse({"tokens", "a cat"});
  EXPECT_NE(neither.exit_code, 0);
  EXPECT_NE(neither.output.find("--tokenizer"), std::string::npos) << neither.output;
}

// --json: the prompt's reading as one line of JSON for scripts.
TEST(TokensCli, JsonForScripts) {
  const auto tokenizer = (fixtures_dir() / "tiny-sd1/diffusers/tokenizer").string();
  const auto run = run_diffuse({"tokens", "--tokenizer", tokenizer, "--steps", "4", "--json", "a [cat:dog:2] (red:1.2)"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const auto reading = nlohmann::json::parse(run.output);
  ASSERT_EQ(reading.at("texts").size(), 2u);
  EXPECT_EQ(reading.at("texts")[0].at("text"), "a cat (red:1.2)");
  EXPECT_EQ(reading.at("texts")[0].at("steps").dump(), R"([{"from":1,"to":2}])");
  EXPECT_EQ(reading.at("texts")[1].at("steps").dump(), R"([{"from":3,"to":4}])");
  const auto& chunk = reading.at("texts")[1].at("chunks")[0];
  EXPECT_EQ(chunk.at("ids")[2], 1929);  // dog</w>
  EXPECT_EQ(chunk.at("tokens")[2], "dog</w>");
  EXPECT_EQ(chunk.at("weights")[3], 1.2);
  const auto both = run_diffuse({"tokens", "--tokenizer", tokenizer, "--json", "--plain-prompt", "a cat"});
  EXPECT_NE(both.exit_code, 0);
  EXPECT_NE(both.output.find("--json prints the prompt language's reading"), std::string::npos) << both.output;
}

class StepsCli : public test::TempDirTest {};

TEST_F(StepsCli, SaveStepsWritesFramesSheetAndAnimation) {
  constexpr int kSteps = 3;
  for (const std::string preview : {"linear", "vae"}) {
    const auto steps = dir_ / preview;
    const auto outcome = run_diffuse({"generate", "-m", tiny_model(), "-p", "a photo of a cat", "--steps",
                                      std::to_string(kSteps), "-o", (dir_ / "out.png").string(), "--save-steps",
                                      steps.string(), "--preview", preview});
    ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
    int noisy = 0, denoised = 0;
    for (const auto& entry : fs::directory_iterator(steps)) {
      const auto name = entry.path().filename().string();
      noisy += name.find("-noisy.png") != std::string::npos ? 1 : 0;
      denoised += name.find("-x0.png") != std::string::npos ? 1 : 0;
    }
    EXPECT_EQ(noisy, kSteps) << preview;
    EXPECT_EQ(denoised, kSteps) << preview;
    const auto frame = image::read_png(steps / "step-01-x0.png");
    EXPECT_EQ(frame.width, 64) << preview;  // the image's size, whatever the preview
    const auto sheet = image::read_png(steps / "steps.png");
    EXPECT_GT(sheet.width, kSteps * 64) << preview;
    const auto animation = image::read_animated_png(steps / "denoising.png");
    EXPECT_EQ(animation.declared_frames, kSteps) << preview;
    EXPECT_EQ(animation.frames.size(), static_cast<size_t>(kSteps)) << preview;
  }
}

TEST_F(StepsCli, UnknownPreviewIsRejectedBeforeLoading) {
  const auto outcome = run_diffuse({"generate", "-m", tiny_model(), "-p", "cat", "--steps", "2", "-o",
                                    (dir_ / "out.png").string(), "--save-steps", (dir_ / "s").string(),
                                    "--preview", "fast"});
  EXPECT_NE(outcome.exit_code, 0);
  EXPECT_NE(outcome.output.find("--preview"), std::string::npos) << outcome.output;
  EXPECT_FALSE(fs::exists(dir_ / "out.png"));
}

class ImageNumbersCli : public test::TempDirTest {};

TEST_F(ImageNumbersCli, RgbTablesAndLatentChannels) {
  const auto& dir = dir_;
  auto pixels = at::zeros({16, 16, 3}, at::kByte);
  pixels.select(2, 0).fill_(200);
  pixels[0][1][1] = 17;
  image::write_png(dir / "in.png", pixels);
  const auto rgb = run_diffuse({"image-numbers", "--size", "4", (dir / "in.png").string()});
  ASSERT_EQ(rgb.exit_code, 0) << rgb.output;
  EXPECT_NE(rgb.output.find("red\n   200 200 200 200\n"), std::string::npos) << rgb.output;
  EXPECT_NE(rgb.output.find("green\n     0  17   0   0\n"), std::string::npos) << rgb.output;
  const auto latent = run_diffuse({"image-numbers", "-m", tiny_model(), "--size", "4", (dir / "in.png").string()});
  ASSERT_EQ(latent.exit_code, 0) << latent.output;
  EXPECT_NE(latent.output.find("channel 3"), std::string::npos) << latent.output;
  EXPECT_NE(latent.output.find("4 channels of 8x8"), std::string::npos) << latent.output;
}

}  // namespace
}  // namespace diffuse::cli
