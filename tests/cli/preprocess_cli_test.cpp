// `diffuse preprocess`: the canny fixtures' maps from the command each case's manifest entry gives,
// both output forms, and bad input refused with nothing written.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "image/png_file.h"
#include "support/fixtures.h"
#include "support/run_diffuse.h"
#include "support/temp_dir.h"

namespace diffuse::cli {
namespace {

namespace fs = std::filesystem;

class PreprocessCli : public test::TempDirTest {
 protected:
  static fs::path canny_dir() { return test::fixtures_dir() / "canny"; }
  fs::path out() const { return dir_ / "map.png"; }

  // The written map against a fixture's mode-L map: R, G and B each equal to it.
  void expect_map_equals(const fs::path& expected_path) {
    const auto made = image::read_png(out());
    const auto expected = image::read_png(expected_path);
    ASSERT_EQ(made.channels, 3);
    ASSERT_EQ(expected.channels, 1);
    ASSERT_EQ(made.height, expected.height);
    ASSERT_EQ(made.width, expected.width);
    const at::Tensor plane = expected.pixels.select(2, 0);
    for (int channel = 0; channel < 3; ++channel) {
      EXPECT_EQ(made.pixels.select(2, channel).ne(plane).sum().item<int64_t>(), 0) << "channel " << channel;
    }
  }

  void expect_refused(const test::Outcome& outcome, const std::string& message) {
    EXPECT_EQ(outcome.exit_code, 1) << outcome.output;
    EXPECT_NE(outcome.output.find(message), std::string::npos) << "expected '" << message << "' in: " << outcome.output;
    EXPECT_TRUE(fs::is_empty(dir_)) << "something was written: " << outcome.output;
  }
};

TEST_F(PreprocessCli, EveryCannyCaseFromItsManifestCommand) {
  const auto manifest = test::read_json(canny_dir() / "manifest.json");
  for (const auto& entry : manifest.at("cases")) {
    SCOPED_TRACE(entry.at("id").get<std::string>());
    const auto& cli = entry.at("cli");
    // The manifest's form: preprocess canny IN OUT --canny-low L --canny-high H.
    const auto outcome = test::run_diffuse({cli.at("command").get<std::string>(), cli.at("preprocessor").get<std::string>(),
                                            (canny_dir() / cli.at("input").get<std::string>()).string(), out().string(),
                                            "--canny-low", std::to_string(cli.at("canny_low").get<int>()),
                                            "--canny-high", std::to_string(cli.at("canny_high").get<int>())});
    ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
    expect_map_equals(canny_dir() / cli.at("output").get<std::string>());
    fs::remove(out());
  }
}

TEST_F(PreprocessCli, TakesTheThresholdsInlineAndTheOutputAsAnOption) {
  const auto outcome = test::run_diffuse({"preprocess", "canny:60:120",
                                          (canny_dir() / "cases/gray_rings_48x80_60_120.png").string(), "-o",
                                          out().string()});
  ASSERT_EQ(outcome.exit_code, 0) << outcome.output;
  expect_map_equals(canny_dir() / "cases/gray_rings_48x80_60_120_canny.png");
}

TEST_F(PreprocessCli, RefusesBadInputWithoutWritingAnything) {
  const std::string input = (canny_dir() / "cases/rgb_shapes_64x64_100_200.png").string();
  const std::string missing = (dir_ / "no-such-picture.png").string();
  expect_refused(test::run_diffuse({"preprocess", "canny", missing, "-o", out().string()}), "no-such-picture.png");
  expect_refused(test::run_diffuse({"preprocess", "sobel", input, "-o", out().string()}),
                 "control preprocessor: unknown 'sobel' (known: canny, invert, threshold, tile, none)");
  expect_refused(test::run_diffuse({"preprocess", "canny", input, "-o", out().string(), "--canny-low", "a"}),
                 "canny: low threshold must be a number, not 'a'");
  expect_refused(test::run_diffuse({"preprocess", "invert", input, "-o", out().string(), "--canny-high", "50"}),
                 "--canny-high: only canny has thresholds, not 'invert'");
  expect_refused(test::run_diffuse({"preprocess", "canny:1:2", input, "-o", out().string(), "--canny-low", "5"}),
                 "--canny-low: the thresholds are already given in 'canny:1:2'");
  expect_refused(test::run_diffuse({"preprocess", "canny", input}), "no output file");
  expect_refused(test::run_diffuse({"preprocess", "canny", input, out().string(), "-o", out().string()}),
                 "the output is given twice");
}

}  // namespace
}  // namespace diffuse::cli
