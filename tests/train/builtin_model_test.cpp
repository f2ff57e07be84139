// The built-in model (models/builtin) follows the prompt: over 48 prompts varying colour, shape,
// background, position and size, pixel statistics of each image (train/shape_analysis.h) must find
// the asked colour and background in >= 90% of them, the position in >= 80% and the shape in >= 70%
// (issue #5's targets); and over 16 short prompts with neither size nor position ("a red circle on
// a blue background") the colour and background in >= 90% and the shape in >= 70%.
// The images are made in this process through the pipeline `diffuse generate` runs (one load, not 64
// processes: startup was most of the test's time); WarnsAboutWordsOutsideItsVocabulary runs
// `diffuse generate` without -m, so the default model is found as a user finds it.
#include <gtest/gtest.h>

#include <random>

#include "pipeline/generation.h"
#include "pipeline/model.h"
#include "pipeline/request.h"
#include "support/temp_dir.h"
#include "support/run_diffuse.h"
#include "train/shape_analysis.h"
#include "train/shapes_tokenizer.h"

namespace diffuse::train {
namespace {

namespace fs = std::filesystem;

constexpr int kPrompts = 48;
constexpr double kShapeFloor = 0.7;  // issue #5

using BuiltinModel = diffuse::test::TempDirTest;

struct Tally {
  int prompts = 0, colour = 0, background = 0, position = 0, kind = 0;
  std::string failures;
};

// The built-in model as `diffuse generate` loads it without -m (its default precision).
pipeline::StableDiffusionModel& builtin_model() {
  static auto model = [] {
    const fs::path dir = DIFFUSE_BUILTIN_MODEL_DIR;
    if (!fs::is_regular_file(dir / "tokenizer" / "vocab.json")) restore_shapes_tokenizer(dir);  // as the CLI does
    return pipeline::StableDiffusionModel::load(dir);
  }();
  return model;
}

// Generates `spec`'s caption with the built-in model as `diffuse generate -p CAPTION --seed SEED` does
// and counts what the picture gets right.
void generate_and_read(const ShapeSpec& spec, int seed, Tally& tally) {
  const auto prompt = shape_caption(spec);
  pipeline::GenerationRequest request;
  request.prompt = prompt;
  request.seed = seed;
  auto& model = builtin_model();
  const auto reading = test::read_shape(pipeline::generate_image(model, pipeline::resolve(request, model)).pixels);
  ++tally.prompts;
  tally.colour += reading.colour == spec.colour;
  tally.background += reading.background == spec.background;
  tally.position += reading.position == spec.position;
  tally.kind += reading.kind == spec.kind;
  if (reading.colour != spec.colour || reading.background != spec.background ||
      (spec.position_named && reading.position != spec.position) || reading.kind != spec.kind) {
    tally.failures += "\n  " + prompt + " -> " + (reading.colour >= 0 ? shape_colours()[reading.colour].name : "?") + " " +
                      (reading.kind >= 0 ? shape_kinds()[reading.kind] : "?") + " on " +
                      shape_colours()[reading.background].name + ", " +
                      (reading.position >= 0 ? shape_positions()[reading.position] : "?") + " (overlap " +
                      std::to_string(reading.overlap) + ")";
  }
}

ShapeSpec random_spec(std::mt19937& rng) {
  ShapeSpec spec;
  spec.kind = static_cast<int>(rng() % 4);
  spec.colour = static_cast<int>(rng() % 6);
  spec.background = (spec.colour + 1 + static_cast<int>(rng() % 5)) % 6;
  spec.position = static_cast<int>(rng() % 5);
  spec.large = rng() % 2 == 0;
  return spec;
}

bool have_builtin_model() {
  return fs::is_regular_file(fs::path(DIFFUSE_BUILTIN_MODEL_DIR) / "model_index.json");
}

TEST_F(BuiltinModel, FollowsColourBackgroundPositionAndShape) {
  if (!have_builtin_model()) GTEST_SKIP() << "no built-in model at " << DIFFUSE_BUILTIN_MODEL_DIR << " (see docs/training.md)";
  std::mt19937 rng(2024);  // mt19937's output is fixed by the standard
  Tally tally;
  for (int i = 0; i < kPrompts; ++i) {
    generate_and_read(random_spec(rng), 100 + i, tally);
  }
  std::printf("colour %d/%d, background %d/%d, position %d/%d, shape %d/%d%s\n", tally.colour, kPrompts,
              tally.background, kPrompts, tally.position, kPrompts, tally.kind, kPrompts, tally.failures.c_str());
  EXPECT_GE(tally.colour, 0.9 * kPrompts);
  EXPECT_GE(tally.background, 0.9 * kPrompts);
  EXPECT_GE(tally.position, 0.8 * kPrompts);
  EXPECT_GE(tally.kind, kShapeFloor * kPrompts);
}

// A new user's first prompt is short: "a red circle on a blue background", no size or position.
TEST_F(BuiltinModel, FollowsShortPrompts) {
  if (!have_builtin_model()) GTEST_SKIP() << "no built-in model at " << DIFFUSE_BUILTIN_MODEL_DIR << " (see docs/training.md)";
  constexpr int kShortPrompts = 16;
  std::mt19937 rng(7);
  Tally tally;
  for (int i = 0; i < kShortPrompts; ++i) {
    auto spec = random_spec(rng);
    spec.size_named = spec.position_named = false;
    generate_and_read(spec, 300 + i, tally);
  }
  std::printf("colour %d/%d, background %d/%d, shape %d/%d%s\n", tally.colour, kShortPrompts, tally.background,
              kShortPrompts, tally.kind, kShortPrompts, tally.failures.c_str());
  EXPECT_GE(tally.colour, 0.9 * kShortPrompts);
  EXPECT_GE(tally.background, 0.9 * kShortPrompts);
  EXPECT_GE(tally.kind, kShapeFloor * kShortPrompts);
}

// Words the model never saw are said, not silently drawn as noise; the picture is still made.
TEST_F(BuiltinModel, WarnsAboutWordsOutsideItsVocabulary) {
  if (!have_builtin_model()) GTEST_SKIP() << "no built-in model at " << DIFFUSE_BUILTIN_MODEL_DIR << " (see docs/training.md)";
  const auto run = diffuse::test::run_diffuse(
      {"generate", "-p", "a purple circle", "--steps", "2", "-o", (dir_ / "purple.png").string()});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("warning: the built-in model has never seen the word 'purple'"), std::string::npos)
      << run.output;
  EXPECT_EQ(run.output.find("'circle'"), std::string::npos) << run.output;
  EXPECT_TRUE(fs::exists(dir_ / "purple.png"));
}

}  // namespace
}  // namespace diffuse::train
