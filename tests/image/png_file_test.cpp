#include "support/temp_dir.h"
#include "image/png_file.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "support/fixtures.h"
#include "util/error.h"

namespace diffuse::image {
namespace {

namespace fs = std::filesystem;

class PngFileTest : public test::TempDirTest {
 protected:

  std::vector<std::string> files_in_dir() const {
    std::vector<std::string> files;
    for (const auto& entry : fs::directory_iterator(dir_)) files.push_back(entry.path().filename().string());
    std::sort(files.begin(), files.end());
    return files;
  }

  static std::string file_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  // Runs `action`, expecting a diffuse::Error that names `path`; returns its message.
  template <typename Action>
  static std::string error_of(Action action, const fs::path& path) {
    try {
      action();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path.filename().string()), std::string::npos) << e.what();
      return e.what();
    }
    ADD_FAILURE() << "no error for " << path;
    return "";
  }

};

at::Tensor random_pixels(int64_t height, int64_t width, int64_t channels) {
  return at::randint(0, 256, {height, width, channels}, at::TensorOptions().dtype(at::kByte));
}

TEST_F(PngFileTest, RoundTripsPixelsAndText) {
  const auto pixels = random_pixels(7, 5, 3);
  const std::vector<std::pair<std::string, std::string>> text = {
      {"parameters", "a photo of a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42"},
      {"latin1", "café crème, naïve"},
      {"international", "猫の写真, Ünïcödé ✨ 🐱"},
  };
  const fs::path path = dir_ / "cat.png";
  write_png(path, pixels, text);
  EXPECT_EQ(files_in_dir(), std::vector<std::string>{"cat.png"});  // no temporary left behind

  const auto image = read_png(path);
  EXPECT_EQ(image.width, 5);
  EXPECT_EQ(image.height, 7);
  EXPECT_EQ(image.channels, 3);
  EXPECT_TRUE(at::equal(image.pixels, pixels));
  for (const auto& [key, value] : text) EXPECT_EQ(image.text.at(key), value) << key;

  // As PIL writes them: Latin-1 text in tEXt (as Latin-1 bytes), anything else in iTXt.
  const std::string bytes = file_bytes(path);
  EXPECT_NE(bytes.find("tEXtparameters"), std::string::npos);
  EXPECT_NE(bytes.find("tEXtlatin1\0caf\xE9", 0, 15), std::string::npos);
  EXPECT_NE(bytes.find("iTXtinternational"), std::string::npos);
}

TEST_F(PngFileTest, InMemoryIsTheSameFile) {
  const auto pixels = random_pixels(6, 9, 4);
  const std::vector<std::pair<std::string, std::string>> text = {{"parameters", "a cat\nSteps: 2"}};
  write_png(dir_ / "cat.png", pixels, text);
  const std::string bytes = encode_png(pixels, text);
  EXPECT_EQ(bytes, file_bytes(dir_ / "cat.png"));
  const auto image = decode_png(bytes, "upload");
  EXPECT_TRUE(at::equal(image.pixels, pixels));
  EXPECT_EQ(image.text.at("parameters"), "a cat\nSteps: 2");
  for (const std::string& bad : {std::string(), std::string("GIF89a"), bytes.substr(0, bytes.size() / 2)}) {
    try {
      decode_png(bad, "upload");
      FAIL() << "decoded " << bad.size() << " bytes";
    } catch (const Error& error) {
      EXPECT_EQ(std::string(error.what()).rfind("upload: ", 0), 0u) << error.what();
    }
  }
  EXPECT_THROW(encode_png(at::zeros({2, 2}, at::kFloat)), Error);
}

TEST_F(PngFileTest, RoundTripsGrayAndRgbaAndOverwrites) {
  const fs::path path = dir_ / "image.png";
  for (int64_t channels : {1, 4, 3}) {
    const auto pixels = random_pixels(3, 4, channels);
    write_png(path, pixels);
    const auto image = read_png(path);
    EXPECT_EQ(image.channels, channels);
    EXPECT_TRUE(at::equal(image.pixels, pixels));
    EXPECT_TRUE(image.text.empty());
  }
  // A non-contiguous view is written as what it shows.
  const auto pixels = random_pixels(4, 6, 3);
  write_png(path, pixels.transpose(0, 1));
  EXPECT_TRUE(at::equal(read_png(path).pixels, pixels.transpose(0, 1)));
  EXPECT_EQ(files_in_dir(), std::vector<std::string>{"image.png"});
}

TEST_F(PngFileTest, FixtureImageMatchesItsFloatReference) {
  const fs::path refs = test::fixtures_dir() / "tiny-sd1" / "refs";
  const auto image = read_png(refs / "t2i_euler_2.png");
  // The PNG is numpy's (image * 255).round() of the float image (NHWC in [0, 1], float32).
  const auto expected = (test::read_reference(refs / "t2i_euler_2_image.bin")[0] * 255).round().to(at::kByte);
  EXPECT_EQ(image.width, 64);
  EXPECT_EQ(image.height, 64);
  EXPECT_EQ(image.channels, 3);
  EXPECT_TRUE(at::equal(image.pixels, expected));
}

TEST_F(PngFileTest, ReadErrorsNameTheFile) {
  EXPECT_NE(error_of([&] { read_png(dir_ / "missing.png"); }, dir_ / "missing.png").find("cannot open"),
            std::string::npos);
  const fs::path text = dir_ / "notes.png";
  std::ofstream(text) << "this is not an image at all";
  EXPECT_NE(error_of([&] { read_png(text); }, text).find("not a PNG"), std::string::npos);
  const fs::path tiny = dir_ / "tiny.png";
  std::ofstream(tiny) << "\x89PN";
  EXPECT_NE(error_of([&] { read_png(tiny); }, tiny).find("not a PNG"), std::string::npos);

  const fs::path cut = dir_ / "cut.png";
  write_png(cut, random_pixels(32, 32, 3));
  fs::resize_file(cut, fs::file_size(cut) / 2);
  EXPECT_NE(error_of([&] { read_png(cut); }, cut).find("damaged"), std::string::npos);
  fs::resize_file(cut, 20);  // inside the IHDR chunk
  EXPECT_NE(error_of([&] { read_png(cut); }, cut).find("damaged"), std::string::npos);
}

TEST_F(PngFileTest, FailedWritesLeaveNothingBehind) {
  const auto pixels = random_pixels(2, 2, 3);
  const fs::path nowhere = dir_ / "no-such-folder" / "out.png";
  EXPECT_NE(error_of([&] { write_png(nowhere, pixels); }, nowhere).find("cannot create"), std::string::npos);
  EXPECT_FALSE(fs::exists(nowhere.parent_path()));

  const fs::path path = dir_ / "out.png";
  error_of([&] { write_png(path, pixels, {{"", "empty key"}}); }, path);
  error_of([&] { write_png(path, pixels, {{"parameters", "bad \xFF utf-8"}}); }, path);
  error_of([&] { write_png(path, pixels.to(at::kFloat)); }, path);
  error_of([&] { write_png(path, random_pixels(2, 2, 2).select(2, 0)); }, path);
  EXPECT_EQ(files_in_dir(), std::vector<std::string>{});

  // A failure while replacing an existing file keeps the old one: the target is a folder here.
  fs::create_directory(dir_ / "taken.png");
  fs::create_directory(dir_ / "taken.png" / "child");
  error_of([&] { write_png(dir_ / "taken.png", pixels); }, dir_ / "taken.png");
  EXPECT_EQ(files_in_dir(), std::vector<std::string>{"taken.png"});
}

}  // namespace
}  // namespace diffuse::image
