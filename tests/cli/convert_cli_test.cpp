// `diffuse convert` as a user runs it: what it did on stdout, bad requests named, nothing half-written.
#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "support/fixtures.h"
#include "support/run_diffuse.h"
#include "support/temp_dir.h"

namespace diffuse {
namespace {

namespace fs = std::filesystem;
using test::fixtures_dir;
using test::run_diffuse;

class ConvertCli : public test::TempDirTest {};

TEST_F(ConvertCli, CheckpointToHalfPrecisionSafetensors) {
  const auto out = dir_ / "tiny.safetensors";
  const auto outcome = run_diffuse({"convert", (fixtures_dir() / "tiny-sd1/tiny-sd1.ckpt").string(), out.string(),
                                    "--precision", "bf16"});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
  EXPECT_EQ(outcome.output, "checkpoint -> safetensors (tensors under their own names): 513 tensors -> " +
                                out.string() + "\n");
  EXPECT_EQ(io::SafetensorsFile::open(out).info("model.diffusion_model.input_blocks.0.0.weight").dtype, "BF16");
}

TEST_F(ConvertCli, BadRequestsAreNamed) {
  const auto ckpt = (fixtures_dir() / "tiny-sd1/tiny-sd1.ckpt").string();
  auto outcome = run_diffuse({"convert", ckpt, (dir_ / "x.ckpt").string()});
  EXPECT_EQ(outcome.exit_code, 1);
  EXPECT_EQ(outcome.output, "diffuse: error: --output: " + (dir_ / "x.ckpt").string() +
                                ": pickles are never written; convert to .safetensors\n");
  outcome = run_diffuse({"convert", ckpt, (dir_ / "x.safetensors").string(), "--precision", "fp8"});
  EXPECT_NE(outcome.exit_code, 0);
  EXPECT_NE(outcome.output.find("--precision"), std::string::npos) << outcome.output;
  outcome = run_diffuse({"convert", (fixtures_dir() / "malicious/exec_posix_system.ckpt").string(),
                         (dir_ / "x.safetensors").string()});
  EXPECT_EQ(outcome.exit_code, 1);
  EXPECT_NE(outcome.output.find("forbidden global posix.system"), std::string::npos) << outcome.output;
  EXPECT_FALSE(fs::exists(dir_ / "x.safetensors"));
}

}  // namespace
}  // namespace diffuse
