// `diffuse generate`'s output names: one image keeps the name given, a batch's carry their seeds.
#include <gtest/gtest.h>

#include "cli/output_paths.h"

namespace diffuse::cli {
namespace {

TEST(OutputPaths, BatchImagesAndStepFoldersCarryTheirSeed) {
  EXPECT_EQ(image_path("out/cat.png", 1, 42), "out/cat.png");
  EXPECT_EQ(image_path("out/cat.png", 3, 43), "out/cat-43.png");
  EXPECT_EQ(steps_folder("steps", 1, 42), "steps");
  EXPECT_EQ(steps_folder("steps", 2, 43), "steps/seed-43");
}

}  // namespace
}  // namespace diffuse::cli
