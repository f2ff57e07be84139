// Tokenizer files written on the spot: BPE mechanics on a toy vocabulary, and the errors for missing or
// malformed files, which must name the file at fault.
#include <gtest/gtest.h>

#include <fstream>
#include <unistd.h>

#include "support/toy_tokenizer.h"
#include "text/clip_tokenizer.h"
#include "util/error.h"

using diffuse::text::ClipTokenizer;
namespace fs = std::filesystem;

namespace {

using diffuse::test::TempFolder;
using diffuse::test::write_toy_tokenizer;

// The error `make` throws, or "" if it throws none.
template <typename F>
std::string error_of(F make) {
  try {
    make();
  } catch (const diffuse::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ClipTokenizerFiles, ToyVocabularyMergesByRank) {
  TempFolder folder;
  write_toy_tokenizer(folder);
  const auto tokenizer = ClipTokenizer::from_path(folder.path());
  EXPECT_EQ(tokenizer.encode("low"), (std::vector<int64_t>{8, 7, 9}));
  EXPECT_EQ(tokenizer.encode("LOL"), (std::vector<int64_t>{8, 6, 3, 9}));  // lower-cased; "l</w>" unmerged
  EXPECT_EQ(tokenizer.encode("wow"), (std::vector<int64_t>{8, 2, 1, 5, 9}));
  EXPECT_EQ(tokenizer.encode_padded("low").size(), 77u);
  EXPECT_EQ(tokenizer.pad_id(), 9);  // no config: pads with <|endoftext|>
  EXPECT_EQ(tokenizer.decode({7, 6, 3}), "low lol ");
}

TEST(ClipTokenizerFiles, ConfigSuppliesPadTokenAndMaxLength) {
  TempFolder folder;
  write_toy_tokenizer(folder);
  folder.write("tokenizer_config.json", R"({"model_max_length": 8, "pad_token": {"content": "l"}})");
  folder.write("special_tokens_map.json", R"({"pad_token": "o"})");  // tokenizer_config.json wins
  const auto tokenizer = ClipTokenizer::from_path(folder.path());
  EXPECT_EQ(tokenizer.max_length(), 8);
  EXPECT_EQ(tokenizer.pad_id(), 0);
  // "wow" has no "l", which as the pad token is matched whole wherever it is typed (transformers adds
  // the special tokens to its trie).
  EXPECT_EQ(tokenizer.encode_padded("wow"), (std::vector<int64_t>{8, 2, 1, 5, 9, 0, 0, 0}));
  EXPECT_EQ(tokenizer.encode_padded("wow wow wow"), (std::vector<int64_t>{8, 2, 1, 5, 2, 1, 5, 9}));
  EXPECT_EQ(tokenizer.encode_padded("low low"), (std::vector<int64_t>{8, 0, 1, 5, 0, 1, 5, 9}));
}

TEST(ClipTokenizerFiles, HugeModelMaxLengthMeansTheDefault) {
  TempFolder folder;
  write_toy_tokenizer(folder);
  folder.write("tokenizer_config.json", R"({"model_max_length": 1000000000000000019884624838656})");
  EXPECT_EQ(ClipTokenizer::from_path(folder.path()).max_length(), 77);
}

TEST(ClipTokenizerFiles, MissingFolderNamesThePath) {
  const fs::path missing = fs::temp_directory_path() / "diffuse_no_such_tokenizer_folder";
  const std::string message = error_of([&] { ClipTokenizer::from_path(missing); });
  EXPECT_NE(message.find(missing.string()), std::string::npos) << message;
}

TEST(ClipTokenizerFiles, MissingMergesNamesMergesTxt) {
  TempFolder folder;
  write_toy_tokenizer(folder);
  fs::remove(folder.path() / "merges.txt");
  const std::string message = error_of([&] { ClipTokenizer::from_path(folder.path()); });
  EXPECT_NE(message.find((folder.path() / "merges.txt").string()), std::string::npos) << message;
}

TEST(ClipTokenizerFiles, MissingVocabNamesVocabJson) {
  TempFolder folder;
  write_toy_tokenizer(folder);
  fs::remove(folder.path() / "vocab.json");
  const std::string message = error_of([&] { ClipTokenizer::from_path(folder.path() / "merges.txt"); });
  EXPECT_NE(message.find((folder.path() / "vocab.json").string()), std::string::npos) << message;
}

TEST(ClipTokenizerFiles, MalformedVocabJsonNamesTheFile) {
  TempFolder folder;
  write_toy_tokenizer(folder);
  const fs::path vocab = folder.write("vocab.json", R"({"l": 0, "o": )");
  std::string message = error_of([&] { ClipTokenizer::from_path(folder.path()); });
  EXPECT_NE(message.find(vocab.string()), std::string::npos) << message;
  EXPECT_NE(message.find("malformed JSON"), std::string::npos) << message;

  folder.write("vocab.json", R"({"l": "zero", "<|startoftext|>": 1, "<|endoftext|>": 2})");
  message = error_of([&] { ClipTokenizer::from_path(folder.path()); });
  EXPECT_NE(message.find(vocab.string()), std::string::npos) << message;
  EXPECT_NE(message.find("'l'"), std::string::npos) << message;

  folder.write("vocab.json", R"({"l": 0})");
  message = error_of([&] { ClipTokenizer::from_path(folder.path()); });
  EXPECT_NE(message.find("<|startoftext|>"), std::string::npos) << message;
}

TEST(ClipTokenizerFiles, MalformedMergeLineNamesFileAndLine) {
  TempFolder folder;
  write_toy_tokenizer(folder);
  const fs::path merges = folder.write("merges.txt", "#version: 0.2\nl o\nlo w </w>\n");
  const std::string message = error_of([&] { ClipTokenizer::from_path(folder.path()); });
  EXPECT_NE(message.find(merges.string() + ":3"), std::string::npos) << message;
}

TEST(ClipTokenizerFiles, UnknownPadTokenNamesTheConfig) {
  TempFolder folder;
  write_toy_tokenizer(folder);
  const fs::path config = folder.write("tokenizer_config.json", R"({"pad_token": "<pad>"})");
  const std::string message = error_of([&] { ClipTokenizer::from_path(folder.path()); });
  EXPECT_NE(message.find(config.string()), std::string::npos) << message;
  EXPECT_NE(message.find("<pad>"), std::string::npos) << message;
}

TEST(ClipTokenizerFiles, MalformedConfigNamesTheFile) {
  TempFolder folder;
  write_toy_tokenizer(folder);
  const fs::path config = folder.write("tokenizer_config.json", "{nope");
  const std::string message = error_of([&] { ClipTokenizer::from_path(folder.path()); });
  EXPECT_NE(message.find(config.string()), std::string::npos) << message;
}

TEST(ClipTokenizerFiles, CorruptGzipNamesTheFile) {
  TempFolder folder;
  // A gzip header followed by garbage.
  const fs::path gz = folder.write("bpe_simple_vocab_16e6.txt.gz", std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00", 8) + "garbage");
  const std::string message = error_of([&] { ClipTokenizer::from_path(gz); });
  EXPECT_NE(message.find(gz.string()), std::string::npos) << message;
}

TEST(ClipTokenizerFiles, UnknownFileKindNamesThePath) {
  TempFolder folder;
  const fs::path other = folder.write("model.bin", "x");
  const std::string message = error_of([&] { ClipTokenizer::from_path(other); });
  EXPECT_NE(message.find(other.string()), std::string::npos) << message;
}

TEST(ClipTokenizerFiles, TokenMissingFromVocabularyIsAnError) {
  TempFolder folder;
  write_toy_tokenizer(folder);
  const auto tokenizer = ClipTokenizer::from_path(folder.path());
  const std::string message = error_of([&] { tokenizer.encode("x"); });
  EXPECT_NE(message.find((folder.path() / "vocab.json").string()), std::string::npos) << message;
}
