#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <sstream>

#include "train/shape_analysis.h"
#include "train/shapes_dataset.h"

namespace diffuse::train {
namespace {

TEST(ShapesDataset, SameSeedSameImagesAndCaptions) {
  const auto a = make_shapes_dataset(40, 64, 7), b = make_shapes_dataset(40, 64, 7), c = make_shapes_dataset(40, 64, 8);
  EXPECT_TRUE(a.images.equal(b.images));
  EXPECT_EQ(a.captions, b.captions);
  EXPECT_FALSE(a.images.equal(c.images));
  EXPECT_EQ(a.images.sizes(), (at::IntArrayRef{40, 3, 64, 64}));
  EXPECT_GE(a.images.min().item<float>(), -1.0f);
  EXPECT_LE(a.images.max().item<float>(), 1.0f);
}

TEST(ShapesDataset, CaptionNamesEveryAttribute) {
  ShapeSpec spec;
  spec.kind = 2, spec.colour = 0, spec.background = 2, spec.position = 0, spec.large = true;
  EXPECT_EQ(shape_caption(spec), "a large red triangle on a blue background, on the left");
  spec.kind = 3, spec.colour = 4, spec.background = 5, spec.position = 4, spec.large = false;
  EXPECT_EQ(shape_caption(spec), "a small white star on a black background, in the centre");
  EXPECT_GE(shape_colours().size(), 6u);
}

TEST(ShapesDataset, CaptionLeavesOutWhatItIsNotToName) {
  ShapeSpec spec;
  spec.kind = 0, spec.colour = 0, spec.background = 2, spec.position = 1, spec.large = true;
  spec.size_named = false;
  EXPECT_EQ(shape_caption(spec), "a red circle on a blue background, on the right");
  spec.position_named = false;
  EXPECT_EQ(shape_caption(spec), "a red circle on a blue background");
  spec.size_named = true;
  EXPECT_EQ(shape_caption(spec), "a large red circle on a blue background");
}

// Short prompts only work if the model has seen short captions: about one caption in four
// leaves out the size, one in four the position.
TEST(ShapesDataset, SomeCaptionsLeaveOutSizeOrPosition) {
  const auto data = make_shapes_dataset(400, 64, 5);
  int without_size = 0, without_position = 0, shortest = 0;
  for (const auto& caption : data.captions) {
    const bool size = caption.find("large") != std::string::npos || caption.find("small") != std::string::npos;
    const bool position = caption.find(',') != std::string::npos;
    without_size += !size;
    without_position += !position;
    shortest += !size && !position;
  }
  EXPECT_GT(without_size, 60);
  EXPECT_LT(without_size, 140);
  EXPECT_GT(without_position, 60);
  EXPECT_LT(without_position, 140);
  EXPECT_GT(shortest, 10);
}

// The reader the prompt-following test uses must get every rendered picture right.
TEST(ShapesDataset, AnalysisReadsEveryCombinationBack) {
  for (int kind = 0; kind < 4; ++kind) {
    for (int colour = 0; colour < 6; ++colour) {
      for (int position = 0; position < 5; ++position) {
        for (bool large : {false, true}) {
          ShapeSpec spec{kind, colour, (colour + 1 + kind + position) % 6, position, large};
          if (spec.background == colour) spec.background = (colour + 1) % 6;
          const auto reading = test::read_shape(render_shape(spec, 64, 0.02, -0.02, 0.95));
          SCOPED_TRACE(shape_caption(spec) + ", fill " + std::to_string(reading.fill_ratio));
          EXPECT_EQ(reading.background, spec.background);
          EXPECT_EQ(reading.colour, spec.colour);
          EXPECT_EQ(reading.position, spec.position);
          EXPECT_EQ(reading.kind, spec.kind);
        }
      }
    }
  }
}

TEST(ShapesDataset, WordsOutsideTheCaptionsVocabulary) {
  EXPECT_EQ(words_outside_shapes_vocabulary("a purple circle on a blue background"), std::vector<std::string>{"purple"});
  EXPECT_EQ(words_outside_shapes_vocabulary("A Large RED star, at the top"), std::vector<std::string>{});
  EXPECT_EQ(words_outside_shapes_vocabulary("a photo of a cat, photo!"), (std::vector<std::string>{"photo", "of", "cat"}));
  for (const auto& colour : shape_colours()) EXPECT_TRUE(words_outside_shapes_vocabulary(colour.name).empty()) << colour.name;
  for (const auto& kind : shape_kinds()) EXPECT_TRUE(words_outside_shapes_vocabulary(kind).empty()) << kind;
  EXPECT_TRUE(words_outside_shapes_vocabulary("small square in the centre, on the right, at the bottom").empty());
}

TEST(ShapesDataset, ForegroundNeverMatchesBackground) {
  const auto data = make_shapes_dataset(300, 64, 3);
  for (const auto& caption : data.captions) {
    std::istringstream words(caption);
    std::vector<std::string> w{std::istream_iterator<std::string>(words), std::istream_iterator<std::string>()};
    // "a [large] RED triangle on a BLUE background[, ...]"
    const auto on = std::find(w.begin(), w.end(), "on");
    ASSERT_TRUE(on != w.end() && on - w.begin() >= 3 && w.end() - on >= 4) << caption;
    EXPECT_NE(*(on - 2), *(on + 2)) << caption;
  }
}

}  // namespace
}  // namespace diffuse::train
