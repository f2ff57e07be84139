// ControlNet preprocessors: every canny case of ../shared/fixtures/canny pixel for pixel (made by
// AUTOMATIC1111's annotator pipeline on OpenCV 4.6), the text forms the parser takes and refuses,
// and exact values of the other preprocessors and of the inpaint condition on small hand-made images.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "image/control_preprocess.h"
#include "image/opencv_calls.h"
#include "image/png_file.h"
#include "support/fixtures.h"
#include "util/error.h"

namespace diffuse::image {
namespace {

namespace fs = std::filesystem;
using Kind = ControlPreprocessor::Kind;

fs::path canny_fixture_dir() { return test::fixtures_dir() / "canny"; }

at::Tensor control_test_bytes(std::vector<int> values, std::vector<int64_t> shape) {
  return at::tensor(values, at::kInt).to(at::kByte).view(shape);
}

// A fixture PNG of mode L as [H, W].
at::Tensor grey_plane(const fs::path& path) {
  const auto png = read_png(path);
  EXPECT_EQ(png.channels, 1) << path;
  return png.pixels.select(2, 0);
}

// The message of the diffuse::Error `action` throws ("" when it throws none).
template <typename Action>
std::string control_error_of(Action action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ControlPreprocessCanny, EveryFixtureCaseMatchesOpenCvPixelForPixel) {
  const auto manifest = test::read_json(canny_fixture_dir() / "manifest.json");
  ASSERT_EQ(manifest.at("cases").size(), 4u);
  for (const auto& entry : manifest.at("cases")) {
    SCOPED_TRACE(entry.at("id").get<std::string>());
    const auto input = read_png(canny_fixture_dir() / entry.at("input").get<std::string>());
    ControlPreprocessor canny = ControlPreprocessor::parse(entry.at("cli").at("control_preprocess").get<std::string>());
    ASSERT_EQ(canny.kind, Kind::canny);
    EXPECT_EQ(canny.canny_low, entry.at("low_threshold").get<double>());
    EXPECT_EQ(canny.canny_high, entry.at("high_threshold").get<double>());

    const at::Tensor map = canny.apply(input.pixels);
    const at::Tensor expected = grey_plane(canny_fixture_dir() / entry.at("output").get<std::string>());
    ASSERT_EQ(map.sizes(), (std::vector<int64_t>{entry.at("height").get<int64_t>(), entry.at("width").get<int64_t>(), 3}));
    for (int channel = 0; channel < 3; ++channel) {
      const at::Tensor plane = map.select(2, channel);
      EXPECT_EQ(plane.ne(expected).sum().item<int64_t>(), 0) << "pixels differing in channel " << channel;
    }
    EXPECT_EQ(map.select(2, 0).eq(255).sum().item<int64_t>(), entry.at("edge_pixels").get<int64_t>());
    EXPECT_EQ((map.eq(0) | map.eq(255)).all().item<bool>(), true);
  }
}

TEST(ControlPreprocessCanny, GreyAndAlphaBecomeRgbAsTheAnnotatorsHwc3) {
  const auto manifest = test::read_json(canny_fixture_dir() / "manifest.json");
  int checked = 0;
  for (const auto& entry : manifest.at("cases")) {
    if (!entry.contains("hwc3")) continue;
    SCOPED_TRACE(entry.at("id").get<std::string>());
    const auto input = read_png(canny_fixture_dir() / entry.at("input").get<std::string>());
    const auto expected = read_png(canny_fixture_dir() / entry.at("hwc3").get<std::string>());
    ASSERT_EQ(expected.channels, 3);
    EXPECT_EQ(input.channels, entry.at("input_mode") == "L" ? 1 : 4);
    const at::Tensor rgb = annotator_rgb(input.pixels);
    ASSERT_EQ(rgb.sizes(), expected.pixels.sizes());
    EXPECT_EQ(rgb.ne(expected.pixels).sum().item<int64_t>(), 0);
    ++checked;
  }
  EXPECT_EQ(checked, 2);  // the grey case and the RGBA case
}

TEST(ControlPreprocessCanny, PaddingToMultiplesOf64ChangesEdgesAtTheBorder) {
  // rgb_noisy_48x80: without the annotator's padding, cv::Canny gives the _nopad map, which
  // differs from the reference in 15 pixels; apply() pads, so it gives the reference.
  const auto manifest = test::read_json(canny_fixture_dir() / "manifest.json");
  int checked = 0;
  for (const auto& entry : manifest.at("cases")) {
    if (entry.at("same_without_padding").get<bool>()) continue;
    SCOPED_TRACE(entry.at("id").get<std::string>());
    const auto input = read_png(canny_fixture_dir() / entry.at("input").get<std::string>());
    const at::Tensor rgb = annotator_rgb(input.pixels);
    const auto height = static_cast<int>(rgb.size(0));
    const auto width = static_cast<int>(rgb.size(1));
    at::Tensor unpadded = at::empty({height, width}, at::kByte);
    canny_edges(rgb.data_ptr<std::uint8_t>(), height, width, entry.at("low_threshold").get<double>(),
                entry.at("high_threshold").get<double>(), unpadded.data_ptr<std::uint8_t>());
    const at::Tensor nopad = grey_plane(canny_fixture_dir() / entry.at("output_without_padding").get<std::string>());
    EXPECT_EQ(unpadded.ne(nopad).sum().item<int64_t>(), 0);

    const at::Tensor padded_map = ControlPreprocessor::parse(entry.at("cli").at("control_preprocess").get<std::string>())
                                      .apply(input.pixels)
                                      .select(2, 0);
    EXPECT_EQ(padded_map.ne(nopad).sum().item<int64_t>(), entry.at("pixels_differing_without_padding").get<int64_t>());
    ++checked;
  }
  EXPECT_EQ(checked, 1);
}

TEST(ControlPreprocessParse, TakesEachFormAndKeepsDefaultsForParametersNotGiven) {
  const auto plain = ControlPreprocessor::parse("canny");
  EXPECT_EQ(plain.kind, Kind::canny);
  EXPECT_EQ(plain.canny_low, 100);
  EXPECT_EQ(plain.canny_high, 200);
  const auto canny = ControlPreprocessor::parse("canny:50.5:150");
  EXPECT_EQ(canny.canny_low, 50.5);
  EXPECT_EQ(canny.canny_high, 150);
  EXPECT_EQ(ControlPreprocessor::parse("invert").kind, Kind::invert);
  EXPECT_EQ(ControlPreprocessor::parse("none").kind, Kind::none);
  EXPECT_EQ(ControlPreprocessor::parse("threshold").threshold_level, 127);
  EXPECT_EQ(ControlPreprocessor::parse("threshold:200").threshold_level, 200);
  EXPECT_EQ(ControlPreprocessor::parse("tile").tile_downsample, 1);
  const auto tile = ControlPreprocessor::parse("tile:2.5");
  EXPECT_EQ(tile.kind, Kind::tile);
  EXPECT_EQ(tile.tile_downsample, 2.5);
}

TEST(ControlPreprocessParse, WritesTheFormItReadsBack) {
  for (const char* spec : {"canny:100:200", "canny:60:120", "invert", "threshold:127", "tile:2.5", "none"}) {
    EXPECT_EQ(ControlPreprocessor::parse(spec).to_string(), spec);
  }
  EXPECT_EQ(ControlPreprocessor::parse("canny").to_string(), "canny:100:200");
  EXPECT_EQ(ControlPreprocessor::parse("tile:2").name(), "tile");
}

TEST(ControlPreprocessParse, NamesWhatIsWrong) {
  EXPECT_EQ(control_error_of([] { ControlPreprocessor::parse("xyz"); }),
            "control preprocessor: unknown 'xyz' (known: canny, invert, threshold, tile, none)");
  EXPECT_EQ(control_error_of([] { ControlPreprocessor::parse(""); }),
            "control preprocessor: unknown '' (known: canny, invert, threshold, tile, none)");
  EXPECT_EQ(control_error_of([] { ControlPreprocessor::parse("canny:a:200"); }),
            "canny: low threshold must be a number, not 'a'");
  EXPECT_EQ(control_error_of([] { ControlPreprocessor::parse("canny:100:2x"); }),
            "canny: high threshold must be a number, not '2x'");
  EXPECT_EQ(control_error_of([] { ControlPreprocessor::parse("canny:-1:200"); }),
            "canny: low threshold must be at least 0, not '-1'");
  EXPECT_EQ(control_error_of([] { ControlPreprocessor::parse("canny:100"); }),
            "canny: expected canny or canny:LOW:HIGH, not 'canny:100'");
  EXPECT_EQ(control_error_of([] { ControlPreprocessor::parse("canny:1:2:3"); }),
            "canny: expected canny or canny:LOW:HIGH, not 'canny:1:2:3'");
  EXPECT_EQ(control_error_of([] { ControlPreprocessor::parse("invert:1"); }),
            "invert: expected invert, not 'invert:1'");
  EXPECT_EQ(control_error_of([] { ControlPreprocessor::parse("threshold:300"); }),
            "threshold: level must be between 0 and 255, not '300'");
  EXPECT_EQ(control_error_of([] { ControlPreprocessor::parse("threshold:"); }),
            "threshold: level must be a number, not ''");
  EXPECT_EQ(control_error_of([] { ControlPreprocessor::parse("tile:0.5"); }),
            "tile: downsample factor must be at least 1, not '0.5'");
  EXPECT_EQ(control_error_of([] { ControlPreprocessor::parse("tile:nan"); }),
            "tile: downsample factor must be a number, not 'nan'");
}

TEST(ControlPreprocessOthers, InvertIsTheComplementOfTheRgbImage) {
  const auto grey = control_test_bytes({0, 100, 255}, {1, 3, 1});
  EXPECT_TRUE(ControlPreprocessor::parse("invert").apply(grey).equal(
      control_test_bytes({255, 255, 255, 155, 155, 155, 0, 0, 0}, {1, 3, 3})));
  // Alpha 255 keeps the colour, alpha 0 is white before inverting.
  const auto rgba = control_test_bytes({10, 20, 30, 255, 10, 20, 30, 0}, {1, 2, 4});
  EXPECT_TRUE(ControlPreprocessor::parse("invert").apply(rgba).equal(
      control_test_bytes({245, 235, 225, 0, 0, 0}, {1, 2, 3})));
  EXPECT_TRUE(ControlPreprocessor::parse("none").apply(rgba).equal(
      control_test_bytes({10, 20, 30, 255, 255, 255}, {1, 2, 3})));
}

TEST(ControlPreprocessOthers, ThresholdIsWhiteWhereEveryChannelIsAboveTheLevel) {
  const auto rgb = control_test_bytes({128, 200, 255, 127, 255, 255, 0, 0, 0, 255, 255, 255}, {2, 2, 3});
  const auto map = ControlPreprocessor::parse("threshold:127").apply(rgb);
  EXPECT_TRUE(map.equal(control_test_bytes({255, 255, 255, 0, 0, 0, 0, 0, 0, 255, 255, 255}, {2, 2, 3})));
  const auto higher = ControlPreprocessor::parse("threshold:200").apply(rgb);
  EXPECT_TRUE(higher.equal(control_test_bytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255}, {2, 2, 3})));
}

TEST(ControlPreprocessOthers, TileShrinksByAreaAveragesAndLeavesFactorsBelow1Point1Alone) {
  // Each 2x2 block's mean, rounded half up: (0+10+20+31)/4 = 15.25 -> 15, (1+2+3+4)/4 = 2.5 -> 3.
  const auto grey = control_test_bytes({0, 10, 1, 2, 20, 31, 3, 4}, {2, 4, 1});
  const auto halved = ControlPreprocessor::parse("tile:2").apply(grey);
  EXPECT_TRUE(halved.equal(control_test_bytes({15, 15, 15, 3, 3, 3}, {1, 2, 3})));
  const auto flat = at::full({9, 12, 3}, 77, at::kByte);
  const auto shrunk = ControlPreprocessor::parse("tile:1.5").apply(flat);
  EXPECT_TRUE(shrunk.equal(at::full({6, 8, 3}, 77, at::kByte)));
  EXPECT_TRUE(ControlPreprocessor::parse("tile:1.05").apply(grey).equal(grey.repeat({1, 1, 3})));
  EXPECT_EQ(control_error_of([&] { ControlPreprocessor::parse("tile:8").apply(grey); }),
            "tile: downsample factor 8 leaves nothing of a 4x2 image");
}

TEST(ControlPreprocessOthers, RefusesWhatIsNotPixels) {
  EXPECT_THROW(ControlPreprocessor::parse("canny").apply(at::zeros({4, 4, 3})), Error);  // float
  EXPECT_THROW(ControlPreprocessor::parse("invert").apply(at::zeros({4, 4, 5}, at::kByte)), Error);
}

TEST(ControlPreprocessInpaint, MasksPixelsAboveHalfWithMinusOne) {
  // Mask grey 127 (127/255 < 0.5) keeps the pixel, 128 marks it; the image's alpha is dropped.
  const auto image = control_test_bytes({10, 20, 30, 0, 40, 50, 60, 255, 255, 0, 51, 9}, {1, 3, 4});
  const auto mask = control_test_bytes({127, 128, 0}, {1, 3, 1});
  const at::Tensor condition = inpaint_condition(image, mask);
  ASSERT_EQ(condition.sizes(), (std::vector<int64_t>{1, 3, 1, 3}));
  ASSERT_EQ(condition.scalar_type(), at::kFloat);
  const std::vector<std::vector<float>> expected_by_channel{
      {10 / 255.0f, -1.0f, 255 / 255.0f}, {20 / 255.0f, -1.0f, 0.0f}, {30 / 255.0f, -1.0f, 51 / 255.0f}};
  for (int channel = 0; channel < 3; ++channel) {
    for (int x = 0; x < 3; ++x) {
      EXPECT_EQ(condition[0][channel][0][x].item<float>(), expected_by_channel[channel][x]) << channel << "," << x;
    }
  }
  // An RGB mask counts by its PIL luma: pure red is 76, below half.
  const auto red_mask = control_test_bytes({255, 0, 0, 255, 255, 255, 0, 0, 0}, {1, 3, 3});
  const at::Tensor by_luma = inpaint_condition(image, red_mask);
  EXPECT_EQ(by_luma[0][0][0][0].item<float>(), 10 / 255.0f);
  EXPECT_EQ(by_luma[0][0][0][1].item<float>(), -1.0f);
}

TEST(ControlPreprocessInpaint, RefusesAMaskOfAnotherSize) {
  const auto image = at::zeros({4, 6, 3}, at::kByte);
  EXPECT_EQ(control_error_of([&] { inpaint_condition(image, at::zeros({4, 5, 1}, at::kByte)); }),
            "inpaint condition: the mask is 5x4, the image 6x4");
}

}  // namespace
}  // namespace diffuse::image
