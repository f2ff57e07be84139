#include <gtest/gtest.h>

#include <fstream>

#include "image/png_file.h"
#include "support/temp_dir.h"
#include "train/dataset.h"
#include "util/error.h"

namespace diffuse::train {
namespace {

namespace fs = std::filesystem;

class ImageFolder : public test::TempDirTest {
 protected:
  void image(const std::string& name, int w, int h, int channels = 3, uint8_t value = 200) {
    image::write_png(dir_ / name, at::full({h, w, channels}, value, at::kByte));
  }
  void caption(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }
  std::string error_of(int size = 32) {
    try {
      load_image_folder(dir_, size, [](const std::string&) {});
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
};

TEST_F(ImageFolder, LoadsPairsInNameOrderResizingMixedSizes) {
  image("b.png", 64, 48);
  caption("b.txt", "  second picture\n");
  image("a.png", 16, 16, 1, 0);  // grey, upscaled
  caption("a.txt", "first");
  image("c.png", 40, 40, 4, 255);  // RGBA: alpha dropped
  caption("c.txt", "third");
  std::vector<std::string> warnings;
  const auto data = load_image_folder(dir_, 32, [&](const std::string& w) { warnings.push_back(w); });
  EXPECT_TRUE(warnings.empty());
  EXPECT_EQ(data.captions, (std::vector<std::string>{"first", "second picture", "third"}));
  ASSERT_EQ(data.images.sizes(), (at::IntArrayRef{3, 3, 32, 32}));
  EXPECT_NEAR(data.images[0].max().item<float>(), -1.0f, 1e-6);
  EXPECT_NEAR(data.images[1].mean().item<float>(), 200 / 127.5 - 1, 1e-5);
  EXPECT_NEAR(data.images[2].min().item<float>(), 1.0f, 1e-6);
}

TEST_F(ImageFolder, SkipsOtherFilesWithAWarning) {
  image("a.png", 32, 32);
  caption("a.txt", "a");
  caption("orphan.txt", "no image");
  std::ofstream(dir_ / "photo.jpg") << "not read";
  std::vector<std::string> warnings;
  const auto data = load_image_folder(dir_, 32, [&](const std::string& w) { warnings.push_back(w); });
  EXPECT_EQ(data.captions.size(), 1u);
  ASSERT_EQ(warnings.size(), 2u);
}

TEST_F(ImageFolder, EmptyFolderIsAnError) {
  EXPECT_NE(error_of().find("no .png images"), std::string::npos) << error_of();
  EXPECT_NE(error_of().find(dir_.string()), std::string::npos);
}

TEST_F(ImageFolder, ImageWithoutCaptionIsAnErrorNamingIt) {
  image("a.png", 32, 32);
  caption("a.txt", "a");
  image("lonely.png", 32, 32);
  const auto message = error_of();
  EXPECT_NE(message.find("lonely.png: no caption (expected lonely.txt"), std::string::npos) << message;
}

TEST_F(ImageFolder, EmptyCaptionIsAnErrorNamingIt) {
  image("a.png", 32, 32);
  caption("a.txt", " \n");
  EXPECT_NE(error_of().find("a.txt: the caption is empty"), std::string::npos) << error_of();
}

TEST_F(ImageFolder, UnreadableImageIsAnErrorNamingIt) {
  std::ofstream(dir_ / "broken.png") << "this is not a PNG";
  caption("broken.txt", "x");
  EXPECT_NE(error_of().find("broken.png"), std::string::npos) << error_of();
}

TEST_F(ImageFolder, MissingFolderIsAnError) {
  EXPECT_THROW(load_image_folder(dir_ / "nope", 32, [](const std::string&) {}), Error);
}

}  // namespace
}  // namespace diffuse::train
