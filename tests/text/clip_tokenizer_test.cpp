// The CLIP tokenizer against CLIP's own ids (tokenizer_cases.json) from both vocabulary formats, and
// against the padded input ids the tiny pipelines' text encoders were given.
#include <gtest/gtest.h>

#include <sstream>

#include "support/fixtures.h"
#include "text/clip_tokenizer.h"
#include "util/error.h"

using diffuse::text::ClipTokenizer;
namespace fs = std::filesystem;

namespace {

fs::path clip_dir() { return diffuse::test::shared_dir() / "clip"; }

// Loaded once: reading 49k tokens and merges is the slow part.
const ClipTokenizer& json_tokenizer() {
  static const ClipTokenizer tokenizer = ClipTokenizer::from_path(clip_dir());
  return tokenizer;
}

const ClipTokenizer& gz_tokenizer() {
  static const ClipTokenizer tokenizer = ClipTokenizer::from_path(clip_dir() / "bpe_simple_vocab_16e6.txt.gz");
  return tokenizer;
}

std::string show(const std::vector<int64_t>& ids) {
  std::ostringstream out;
  for (size_t i = 0; i < ids.size(); ++i) out << (i ? "," : "") << ids[i];
  return out.str();
}

// Every reference case, each mismatch reported on its own; returns how many matched.
size_t matching_cases(const ClipTokenizer& tokenizer) {
  const auto cases = diffuse::test::read_json(diffuse::test::fixtures_dir() / "tokenizer_cases.json").at("cases");
  size_t matched = 0;
  for (const auto& c : cases) {
    const std::string text = c.at("text").get<std::string>();
    const auto expected = c.at("ids").get<std::vector<int64_t>>();
    const auto actual = tokenizer.encode(text);
    if (actual == expected) {
      ++matched;
    } else {
      ADD_FAILURE() << "text: " << text << "\n  expected " << show(expected) << "\n  actual   " << show(actual);
    }
  }
  EXPECT_EQ(matched, cases.size());
  return matched;
}

// Every padded id list a manifest records: text encoder inputs and each run's prompt / negative prompt.
void expect_manifest_ids(const std::string& model, const ClipTokenizer& tokenizer, const std::string& suffix = "") {
  const auto manifest = diffuse::test::read_json(diffuse::test::fixtures_dir() / model / "manifest.json");
  size_t checked = 0;
  for (const auto& entry : manifest.at("text_encoder")) {
    const std::string prompt = entry.at("prompt").get<std::string>();
    EXPECT_EQ(tokenizer.encode_padded(prompt), entry.at("input_ids" + suffix).get<std::vector<int64_t>>())
        << model << " text_encoder prompt: " << prompt;
    ++checked;
  }
  for (const auto& run : manifest.at("runs")) {
    const std::string prompt = run.at("prompt").get<std::string>();
    EXPECT_EQ(tokenizer.encode_padded(prompt), run.at("prompt_input_ids" + suffix).get<std::vector<int64_t>>())
        << model << " run " << run.at("id").get<std::string>();
    const auto& negative_ids = run.at("negative_prompt_input_ids" + suffix);
    if (negative_ids.is_null()) continue;  // SDXL's zeroed unconditional embedding: nothing was tokenized
    const std::string negative = run.at("negative_prompt").is_null() ? "" : run.at("negative_prompt").get<std::string>();
    EXPECT_EQ(tokenizer.encode_padded(negative), negative_ids.get<std::vector<int64_t>>())
        << model << " run " << run.at("id").get<std::string>() << " negative prompt";
    checked += 2;
  }
  EXPECT_GT(checked, 3u);
}

}  // namespace

TEST(ClipTokenizer, ReferenceCasesFromVocabJsonAndMerges) {
  EXPECT_EQ(matching_cases(json_tokenizer()), 42u);
}

TEST(ClipTokenizer, ReferenceCasesFromBpeSimpleVocabGz) {
  EXPECT_EQ(matching_cases(gz_tokenizer()), 42u);
}

TEST(ClipTokenizer, DecodeGivesCLIPsDecodedText) {
  const auto cases = diffuse::test::read_json(diffuse::test::fixtures_dir() / "tokenizer_cases.json").at("cases");
  for (const auto& c : cases) {
    const auto ids = c.at("ids").get<std::vector<int64_t>>();
    const std::vector<int64_t> tokens(ids.begin() + 1, ids.end() - 1);
    EXPECT_EQ(json_tokenizer().decode(tokens), c.at("decoded").get<std::string>()) << c.at("text");
  }
}

TEST(ClipTokenizer, BothFormatsHoldTheSameVocabulary) {
  const ClipTokenizer& a = json_tokenizer();
  const ClipTokenizer& b = gz_tokenizer();
  ASSERT_EQ(a.vocab_size(), 49408);
  ASSERT_EQ(b.vocab_size(), 49408);
  EXPECT_EQ(a.start_id(), 49406);
  EXPECT_EQ(a.end_id(), 49407);
  EXPECT_EQ(b.start_id(), 49406);
  EXPECT_EQ(b.end_id(), 49407);
  for (int64_t id = 0; id < a.vocab_size(); ++id) ASSERT_EQ(a.token_text(id), b.token_text(id)) << id;
  EXPECT_EQ(a.token_text(0), "!");
  EXPECT_EQ(a.token_text(320), "a</w>");
  EXPECT_EQ(a.token_id("cat</w>"), 2368);
  EXPECT_FALSE(a.token_id("no such token").has_value());
  EXPECT_EQ(a.max_length(), 77);
  EXPECT_EQ(b.max_length(), 77);
  EXPECT_EQ(b.pad_id(), 49407);  // CLIP's own format carries no config: SD 1.x padding by default
}

TEST(ClipTokenizer, PaddedIdsMatchTinySd1Manifest) {
  const auto tokenizer = ClipTokenizer::from_path(diffuse::test::fixtures_dir() / "tiny-sd1/diffusers/tokenizer");
  EXPECT_EQ(tokenizer.pad_id(), 49407);
  expect_manifest_ids("tiny-sd1", tokenizer);
}

TEST(ClipTokenizer, PaddedIdsMatchTinySd2vManifestPaddingWithExclamationMark) {
  const auto tokenizer = ClipTokenizer::from_path(diffuse::test::fixtures_dir() / "tiny-sd2v/diffusers/tokenizer");
  EXPECT_EQ(tokenizer.pad_id(), 0);  // tokenizer_config.json: "pad_token": "!"
  EXPECT_EQ(tokenizer.max_length(), 77);
  expect_manifest_ids("tiny-sd2v", tokenizer);
}

TEST(ClipTokenizer, PaddedIdsMatchTinySdxlManifestForBothTokenizers) {
  const fs::path root = diffuse::test::fixtures_dir() / "tiny-sdxl/diffusers";
  const auto first = ClipTokenizer::from_path(root / "tokenizer");
  const auto second = ClipTokenizer::from_path(root / "tokenizer_2");
  EXPECT_EQ(first.pad_id(), 49407);
  EXPECT_EQ(second.pad_id(), 0);
  expect_manifest_ids("tiny-sdxl", first);
  expect_manifest_ids("tiny-sdxl", second, "_2");
}

TEST(ClipTokenizer, PadOverrideForCheckpointsWithoutConfig) {
  ClipTokenizer tokenizer = gz_tokenizer();  // copies share the vocabulary; the pad is per copy
  tokenizer.set_pad_token("!");
  EXPECT_EQ(tokenizer.pad_id(), 0);
  EXPECT_EQ(gz_tokenizer().pad_id(), 49407);
  const auto ids = tokenizer.encode_padded("a photo of a cat");
  ASSERT_EQ(ids.size(), 77u);
  EXPECT_EQ(std::vector<int64_t>(ids.begin(), ids.begin() + 8),
            (std::vector<int64_t>{49406, 320, 1125, 539, 320, 2368, 49407, 0}));
  EXPECT_EQ(ids.back(), 0);
  tokenizer.set_pad_id(49407);
  EXPECT_EQ(tokenizer.encode_padded("a photo of a cat").back(), 49407);
  EXPECT_THROW(tokenizer.set_pad_token("not-a-token"), diffuse::Error);
  EXPECT_THROW(tokenizer.set_pad_id(49408), diffuse::Error);
  EXPECT_THROW(tokenizer.set_pad_id(-1), diffuse::Error);
}

TEST(ClipTokenizer, LongPromptIsTruncatedTo77EndingWithEndToken) {
  std::string prompt;
  for (int i = 0; i < 30; ++i) prompt += "a red fox, ";
  const auto full = json_tokenizer().encode(prompt);
  ASSERT_GT(full.size(), 77u);
  const auto padded = json_tokenizer().encode_padded(prompt);
  ASSERT_EQ(padded.size(), 77u);
  EXPECT_EQ(padded.front(), 49406);
  EXPECT_EQ(padded.back(), 49407);
  EXPECT_EQ(std::vector<int64_t>(padded.begin(), padded.end() - 1), std::vector<int64_t>(full.begin(), full.begin() + 76));
  // Exactly 75 tokens fit without truncation.
  const auto tokens = json_tokenizer().tokenize(prompt);
  EXPECT_EQ(tokens.size() + 2, full.size());
}

TEST(ClipTokenizer, SpecialTokensWrittenInThePromptAreSpecialIds) {
  // CLIP's BPE cache is seeded with both special tokens; the pattern matches them whole.
  EXPECT_EQ(json_tokenizer().encode("a <|endoftext|> b"), (std::vector<int64_t>{49406, 320, 49407, 321, 49407}));
  EXPECT_EQ(json_tokenizer().encode("<|startoftext|>"), (std::vector<int64_t>{49406, 49406, 49407}));
}

TEST(ClipTokenizer, RepeatedEncodingUsesTheCacheConsistently) {
  const std::string prompt = "supercalifragilisticexpialidocious supercalifragilisticexpialidocious";
  const auto first = json_tokenizer().encode(prompt);
  EXPECT_EQ(json_tokenizer().encode(prompt), first);
  const size_t half = (first.size() - 2) / 2;
  EXPECT_EQ(std::vector<int64_t>(first.begin() + 1, first.begin() + 1 + static_cast<std::ptrdiff_t>(half)),
            std::vector<int64_t>(first.begin() + 1 + static_cast<std::ptrdiff_t>(half), first.end() - 1));
}

TEST(ClipTokenizer, LoadsFromAVocabJsonOrMergesTxtPath) {
  const auto from_vocab = ClipTokenizer::from_path(clip_dir() / "vocab.json");
  const auto from_merges = ClipTokenizer::from_path(clip_dir() / "merges.txt");
  const std::string prompt = "an astronaut riding a horse";
  EXPECT_EQ(from_vocab.encode(prompt), json_tokenizer().encode(prompt));
  EXPECT_EQ(from_merges.encode(prompt), json_tokenizer().encode(prompt));
  EXPECT_EQ(from_vocab.source(), clip_dir() / "vocab.json");
}
