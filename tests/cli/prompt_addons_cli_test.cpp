// LoRAs and embeddings from the command line: the references from the flags alone (a prompt tag
// with --lora-dir, or --lora FILE:WEIGHT; --embedding), and bad ones refused before anything is
// written.
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

class PromptAddonsCli : public test::TempDirTest {
 protected:
  fs::path out() const { return dir_ / "out.png"; }

  // 64x64, 8 steps, guidance 6, fp32: the settings of every LoRA and embedding reference run.
  Outcome generate(const std::string& prompt, const std::string& seed, std::vector<std::string> extra) {
    std::vector<std::string> args{"generate", "-m", (fixtures_dir() / "tiny-sd1/diffusers").string(), "-p", prompt,
                                  "--steps", "8", "--cfg-scale", "6", "--seed", seed, "--precision", "fp32",
                                  "-o", out().string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_diffuse(args);
  }

  void expect_reference(const Outcome& outcome, const fs::path& reference) {
    ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
    const auto made = image::read_png(out());
    const auto expected = image::read_png(reference);
    ASSERT_EQ(made.pixels.sizes(), expected.pixels.sizes());
    EXPECT_LE((made.pixels.to(at::kShort) - expected.pixels.to(at::kShort)).abs().max().item<int>(), 1) << reference;
  }

  void expect_rejected(const Outcome& outcome, const std::string& message) {
    EXPECT_NE(outcome.exit_code, 0) << outcome.output;
    EXPECT_NE(outcome.output.find(message), std::string::npos) << "expected '" << message << "' in: " << outcome.output;
    EXPECT_FALSE(fs::exists(out())) << outcome.output;
  }
};

TEST_F(PromptAddonsCli, LoraFromAPromptTagOrAFlagGivesTheReference) {
  const auto lora = fixtures_dir() / "lora";
  const auto outcome = generate("a photo of a cat <lora:tiny-sd1-lora:1.0>", "4101",
                                {"--sampler", "euler", "--lora-dir", lora.string()});
  expect_reference(outcome, lora / "refs/t2i_euler_8_lora_s1.0.png");
  EXPECT_NE(image::read_png(out()).text.at("parameters").find("a photo of a cat <lora:tiny-sd1-lora:1.0>"),
            std::string::npos);
  fs::remove(out());
  expect_reference(generate("a photo of a cat", "4102",
                            {"--sampler", "dpm++2m", "--lora", (lora / "tiny-sd1-lora.safetensors").string() + ":0.6"}),
                   lora / "refs/t2i_dpmpp_2m_8_lora_s0.6.png");
}

TEST_F(PromptAddonsCli, EmbeddingFromAFileOrAFolderGivesTheReference) {
  const auto ti = fixtures_dir() / "textual_inversion";
  expect_reference(generate("a painting in tiny-style style", "4201",
                            {"--sampler", "euler", "--embedding", (ti / "tiny-style.pt").string()}),
                   ti / "refs/t2i_euler_8_ti.png");
  fs::remove(out());
  fs::create_directories(dir_ / "embeddings/sdxl");
  fs::copy_file(ti / "tiny-style.safetensors", dir_ / "embeddings/tiny-style.safetensors");
  std::ofstream(dir_ / "embeddings/sdxl/other.safetensors") << "not an embedding";
  const auto outcome = generate("a painting in tiny-style style", "4201",
                                {"--sampler", "euler", "--embeddings-dir", (dir_ / "embeddings").string()});
  expect_reference(outcome, ti / "refs/t2i_euler_8_ti.png");
  EXPECT_NE(outcome.output.find("warning: embedding skipped: " + (dir_ / "embeddings/sdxl/other.safetensors").string()),
            std::string::npos)
      << outcome.output;
}

TEST_F(PromptAddonsCli, RefusesBadLorasAndEmbeddingsBeforeWritingAnything) {
  expect_rejected(generate("a cat <lora:absent:1>", "1", {}),
                  "--lora: no LoRA file 'absent' and no absent.safetensors (.ckpt, .pt) in any LoRA folder");
  expect_rejected(generate("a cat", "1", {"--lora", (dir_ / "absent.safetensors").string() + ":0.5"}),
                  "no LoRA file '" + (dir_ / "absent.safetensors").string() + "'");
  expect_rejected(generate("a cat <lora:x:lots>", "1", {}), "--prompt: <lora:x:lots>: 'lots' is not a number");
  std::ofstream(dir_ / "broken.safetensors") << "not a LoRA";
  expect_rejected(generate("a cat", "1", {"--lora", (dir_ / "broken.safetensors").string()}), "broken.safetensors");
  expect_rejected(generate("a cat", "1", {"--embedding", (dir_ / "missing.pt").string()}),
                  "--embedding: '" + (dir_ / "missing.pt").string() + "' is not a file");
  expect_rejected(generate("a cat", "1", {"--embedding", (fixtures_dir() / "lora/tiny-sd1-lora.safetensors").string()}),
                  "is not a textual-inversion embedding");
  // A pickle that would run a command is refused by the global it names; nothing runs.
  fs::copy_file(fixtures_dir() / "malicious/exec_os_system.ckpt", dir_ / "evil.pt");
  expect_rejected(generate("a cat", "1", {"--embedding", (dir_ / "evil.pt").string()}), "forbidden global os.system");
  EXPECT_FALSE(fs::exists("pwned_marker"));
  expect_rejected(generate("a cat", "1", {"--embeddings-dir", (dir_ / "nowhere").string()}),
                  "--embeddings-dir: '" + (dir_ / "nowhere").string() + "' is not a folder");
}

TEST_F(PromptAddonsCli, PlainPromptReadsTagsAsWords) {
  const auto outcome = generate("a cat <lora:absent:1>", "1", {"--plain-prompt"});
  EXPECT_EQ(outcome.exit_code, 0) << outcome.output;
}

}  // namespace
}  // namespace diffuse::cli
