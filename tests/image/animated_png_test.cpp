#include <gtest/gtest.h>

#include <fstream>

#include "image/animated_png.h"
#include "image/png_file.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace diffuse::image {
namespace {

namespace fs = std::filesystem;

// Its own folder per test: ctest -j runs these tests side by side.
class AnimatedPngTest : public test::TempDirTest {};

std::vector<at::Tensor> test_frames(int count) {
  std::vector<at::Tensor> frames;
  for (int i = 0; i < count; ++i) {
    frames.push_back((at::arange(5 * 7 * 3, at::kInt).reshape({5, 7, 3}) * (i + 1)).remainder(256).to(at::kByte));
  }
  return frames;
}

TEST_F(AnimatedPngTest, FramesAndDelaysRoundTrip) {
  const auto frames = test_frames(4);
  const auto path = dir_ / "anim.png";
  write_animated_png(path, frames, 250, 2000);
  const auto read = read_animated_png(path);
  EXPECT_EQ(read.declared_frames, 4);
  ASSERT_EQ(read.frames.size(), 4u);
  for (size_t i = 0; i < frames.size(); ++i) EXPECT_TRUE(at::equal(read.frames[i], frames[i])) << "frame " << i;
  EXPECT_EQ(read.delays_ms, (std::vector<int>{250, 250, 250, 2000}));
  // A plain PNG reader (libpng) sees the first frame as the still image.
  EXPECT_TRUE(at::equal(read_png(path).pixels, frames[0]));
}

TEST_F(AnimatedPngTest, RejectsMismatchedFramesAndPlainPngs) {
  auto frames = test_frames(2);
  frames.push_back(at::zeros({4, 4, 3}, at::kByte));
  EXPECT_THROW(write_animated_png(dir_ / "bad.png", frames, 100, 100), Error);
  EXPECT_FALSE(fs::exists(dir_ / "bad.png"));
  write_png(dir_ / "still.png", test_frames(1)[0]);
  EXPECT_THROW(read_animated_png(dir_ / "still.png"), Error);
}

TEST_F(AnimatedPngTest, DamagedFrameDataIsAnError) {
  const auto path = dir_ / "anim.png";
  write_animated_png(path, test_frames(3), 100, 100);
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekg(0, std::ios::end);
  const auto size = static_cast<std::streamoff>(file.tellg());
  file.seekp(size - 30);  // inside the last fdAT's compressed data
  file.write("\xff\xff\xff\xff\xff\xff", 6);
  file.close();
  EXPECT_THROW(read_animated_png(path), Error);
}

}  // namespace
}  // namespace diffuse::image
