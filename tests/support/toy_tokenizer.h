#pragma once
// A scratch folder and a toy CLIP tokenizer in it, for the tokenizer file tests.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace diffuse::test {

// A fresh folder under the temporary directory, removed with the object.
class TempFolder {
 public:
  TempFolder() {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("diffuse_tokenizer_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~TempFolder() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path write(const std::string& name, const std::string& content) const {
    std::ofstream(path_ / name, std::ios::binary) << content;
    return path_ / name;
  }

 private:
  std::filesystem::path path_;
};

// A toy vocabulary: l o w (0-2), the same with </w> (3-5), "lo" 6, "low</w>" 7, <|startoftext|> 8,
// <|endoftext|> 9; merges l+o -> "lo", lo+w</w> -> "low</w>".
inline void write_toy_tokenizer(const TempFolder& folder) {
  folder.write("vocab.json", R"({"l": 0, "o": 1, "w": 2, "l</w>": 3, "o</w>": 4, "w</w>": 5, "lo": 6,
    "low</w>": 7, "<|startoftext|>": 8, "<|endoftext|>": 9})");
  folder.write("merges.txt", "#version: 0.2\nl o\nlo w</w>\n");
}

}  // namespace diffuse::test
