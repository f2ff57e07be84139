// Added tokens matched whole before cleaning, as transformers' slow CLIPTokenizer does
// (PreTrainedTokenizer.tokenize: tokens_trie.split, then _tokenize between the matches).
//
// Ids from shared/clip/vocab.json (the same table as every fixture tokenizer's): "wow</w>" 2781,
// "hi</w>" 1883, "8</w>" 279, "k</w>" 330, "a</w>" 320, "b</w>" 321, "?</w>" 286, "!" 0, "!</w>" 256,
// "!!</w>" 748, "!?</w>" 6004, <|startoftext|> 49406, <|endoftext|> 49407.
#include <gtest/gtest.h>

#include <fstream>
#include <unistd.h>

#include "support/fixtures.h"
#include "support/toy_tokenizer.h"
#include "text/clip_tokenizer.h"
#include "util/error.h"

using diffuse::text::ClipTokenizer;
using Ids = std::vector<int64_t>;
namespace fs = std::filesystem;

namespace {

// tiny-sd2v's tokenizer: pad_token "!" in tokenizer_config.json and special_tokens_map.json.
const ClipTokenizer& sd2_tokenizer() {
  static const ClipTokenizer tokenizer =
      ClipTokenizer::from_path(diffuse::test::fixtures_dir() / "tiny-sd2v/diffusers/tokenizer");
  return tokenizer;
}

// tiny-sd1's tokenizer: pad_token <|endoftext|>.
const ClipTokenizer& sd1_tokenizer() {
  static const ClipTokenizer tokenizer =
      ClipTokenizer::from_path(diffuse::test::fixtures_dir() / "tiny-sd1/diffusers/tokenizer");
  return tokenizer;
}

// CLIP's own format: no config, so CLIPTokenizer's defaults (pad <|endoftext|>).
const ClipTokenizer& gz_tokenizer() {
  static const ClipTokenizer tokenizer =
      ClipTokenizer::from_path(diffuse::test::shared_dir() / "clip" / "bpe_simple_vocab_16e6.txt.gz");
  return tokenizer;
}

using diffuse::test::TempFolder;
using diffuse::test::write_toy_tokenizer;

std::string error_of(const fs::path& folder) {
  try {
    ClipTokenizer::from_path(folder);
  } catch (const diffuse::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ClipAddedTokens, Sd2PadTokenExclamationMarkIsMatchedWhole) {
  const ClipTokenizer& sd2 = sd2_tokenizer();
  EXPECT_EQ(sd2.pad_id(), 0);
  // "wow 8k" is cleaned and BPE'd; the "!" after it is the added token, id 0 (not "!</w>", 256).
  EXPECT_EQ(sd2.encode("wow 8k!"), (Ids{49406, 2781, 279, 330, 0, 49407}));
  EXPECT_EQ(sd2.encode("hi!"), (Ids{49406, 1883, 0, 49407}));
  EXPECT_EQ(sd2.encode("!!"), (Ids{49406, 0, 0, 49407}));  // two matches, not "!!</w>" (748)
  EXPECT_EQ(sd2.encode("!!!"), (Ids{49406, 0, 0, 0, 49407}));
  EXPECT_EQ(sd2.encode("!?"), (Ids{49406, 0, 286, 49407}));  // "?" on its own after the match
  // Whitespace beside a match goes with the text around it, which cleaning strips.
  EXPECT_EQ(sd2.encode("wow 8k !"), sd2.encode("wow 8k!"));
  EXPECT_EQ(sd2.encode("  !  "), (Ids{49406, 0, 49407}));
  EXPECT_EQ(sd2.tokenize("wow 8k!"), (Ids{2781, 279, 330, 0}));
  const Ids padded = sd2.encode_padded("wow 8k!");
  ASSERT_EQ(padded.size(), 77u);
  EXPECT_EQ(Ids(padded.begin(), padded.begin() + 8), (Ids{49406, 2781, 279, 330, 0, 49407, 0, 0}));
  EXPECT_EQ(padded.back(), 0);
}

TEST(ClipAddedTokens, Sd2ReferenceCaseWithExclamationMark) {
  // tokenizer_cases.json's "hello, world! how's it going?" (CLIP: ... 1002, 256, 829 ...) with the "!"
  // as the added token.
  EXPECT_EQ(sd2_tokenizer().encode("hello, world! how's it going?"),
            (Ids{49406, 3306, 267, 1002, 0, 829, 568, 585, 1245, 286, 49407}));
}

TEST(ClipAddedTokens, Sd2AgreesWithClipOnEveryReferenceCaseWithoutExclamationMark) {
  const auto cases = diffuse::test::read_json(diffuse::test::fixtures_dir() / "tokenizer_cases.json").at("cases");
  size_t checked = 0;
  for (const auto& c : cases) {
    const std::string text = c.at("text").get<std::string>();
    if (text.find('!') != std::string::npos) continue;
    EXPECT_EQ(sd2_tokenizer().encode(text), c.at("ids").get<Ids>()) << text;
    ++checked;
  }
  EXPECT_EQ(checked, 40u);
}

TEST(ClipAddedTokens, Sd1PadEndOfTextKeepsExclamationMarkInBpe) {
  const ClipTokenizer& sd1 = sd1_tokenizer();
  EXPECT_EQ(sd1.pad_id(), 49407);
  EXPECT_EQ(sd1.encode("8k!"), (Ids{49406, 279, 330, 256, 49407}));
  EXPECT_EQ(sd1.encode("wow 8k!"), (Ids{49406, 2781, 279, 330, 256, 49407}));
  EXPECT_EQ(sd1.encode("hi!"), (Ids{49406, 1883, 256, 49407}));
  EXPECT_EQ(sd1.encode("!!"), (Ids{49406, 748, 49407}));
  EXPECT_EQ(sd1.encode("!?"), (Ids{49406, 6004, 49407}));
  EXPECT_EQ(gz_tokenizer().encode("8k!"), (Ids{49406, 279, 330, 256, 49407}));
}

TEST(ClipAddedTokens, EndOfTextTypedInThePromptIsOneToken) {
  for (const ClipTokenizer* tokenizer : {&sd1_tokenizer(), &sd2_tokenizer(), &gz_tokenizer()}) {
    const std::string source = tokenizer->source().string();
    EXPECT_EQ(tokenizer->encode("a <|endoftext|> b"), (Ids{49406, 320, 49407, 321, 49407})) << source;
    EXPECT_EQ(tokenizer->encode("<|endoftext|>"), (Ids{49406, 49407, 49407})) << source;
    EXPECT_EQ(tokenizer->encode("a<|endoftext|>b"), (Ids{49406, 320, 49407, 321, 49407})) << source;
    EXPECT_EQ(tokenizer->encode("<|startoftext|>a"), (Ids{49406, 49406, 320, 49407})) << source;
    // The match is case-sensitive, on the text as typed; written otherwise the token is still found
    // after lower-casing, by CLIP's own pattern and BPE cache.
    EXPECT_EQ(tokenizer->encode("a <|EndOfText|> b"), (Ids{49406, 320, 49407, 321, 49407})) << source;
  }
  EXPECT_EQ(sd2_tokenizer().encode("wow<|endoftext|>!"), (Ids{49406, 2781, 49407, 0, 49407}));
  EXPECT_EQ(sd1_tokenizer().encode("wow<|endoftext|>!"), (Ids{49406, 2781, 49407, 256, 49407}));
}

TEST(ClipAddedTokens, FixtureTokenizersListTheirSpecialTokens) {
  std::vector<std::pair<std::string, int64_t>> sd2;
  for (const auto& token : sd2_tokenizer().added_tokens()) sd2.emplace_back(token.content, token.id.value());
  EXPECT_EQ(sd2, (std::vector<std::pair<std::string, int64_t>>{{"<|startoftext|>", 49406}, {"<|endoftext|>", 49407}, {"!", 0}}));
  std::vector<std::pair<std::string, int64_t>> sd1;
  for (const auto& token : sd1_tokenizer().added_tokens()) sd1.emplace_back(token.content, token.id.value());
  EXPECT_EQ(sd1, (std::vector<std::pair<std::string, int64_t>>{{"<|startoftext|>", 49406}, {"<|endoftext|>", 49407}}));
  EXPECT_EQ(sd2_tokenizer().vocab_size(), 49408);
}

TEST(ClipAddedTokens, SetPadTokenMakesItAnAddedTokenAsASd2FolderDoes) {
  // A single SD 2.x file: CLIP's vocabulary, pad set by the caller.
  ClipTokenizer tokenizer = gz_tokenizer();
  tokenizer.set_pad_token("!");
  EXPECT_EQ(tokenizer.pad_id(), 0);
  for (const std::string prompt : {"wow 8k!", "hi!", "!!", "hello, world! how's it going?", "a <|endoftext|> b!"}) {
    EXPECT_EQ(tokenizer.encode(prompt), sd2_tokenizer().encode(prompt)) << prompt;
    EXPECT_EQ(tokenizer.encode_padded(prompt), sd2_tokenizer().encode_padded(prompt)) << prompt;
  }
  EXPECT_EQ(tokenizer.encode("wow 8k!"), (Ids{49406, 2781, 279, 330, 0, 49407}));
  EXPECT_EQ(gz_tokenizer().encode("wow 8k!"), (Ids{49406, 2781, 279, 330, 256, 49407}));  // copies apart

  // Back to <|endoftext|> (as SD 1.x single files set it): "!" is plain text again.
  tokenizer.set_pad_id(tokenizer.end_id());
  EXPECT_EQ(tokenizer.pad_id(), 49407);
  EXPECT_EQ(tokenizer.encode("wow 8k!"), (Ids{49406, 2781, 279, 330, 256, 49407}));
  tokenizer.set_pad_id(0);
  EXPECT_EQ(tokenizer.encode("8k!"), (Ids{49406, 279, 330, 0, 49407}));

  // And from an SD 2.x folder to <|endoftext|>: the folder lists "!" only as its pad token.
  ClipTokenizer sd2 = sd2_tokenizer();
  sd2.set_pad_token("<|endoftext|>");
  EXPECT_EQ(sd2.encode("8k!"), (Ids{49406, 279, 330, 256, 49407}));
  EXPECT_EQ(sd2_tokenizer().encode("8k!"), (Ids{49406, 279, 330, 0, 49407}));
}

// ---- Toy tokenizer folders: every place the files can name added tokens, and their flags.

TEST(ClipAddedTokens, PadTokenObjectInSpecialTokensMapIsMatchedInsideWords) {
  TempFolder folder;
  write_toy_tokenizer(folder);
  folder.write("special_tokens_map.json", R"({"pad_token": {"content": "o", "lstrip": false, "rstrip": false}})");
  const auto tokenizer = ClipTokenizer::from_path(folder.path());
  EXPECT_EQ(tokenizer.pad_id(), 1);
  // The trie matches anywhere, not at word boundaries: "low" is "l", "o", "w", each piece on its own.
  EXPECT_EQ(tokenizer.encode("low"), (Ids{8, 3, 1, 5, 9}));
  EXPECT_EQ(tokenizer.encode("wow"), (Ids{8, 5, 1, 5, 9}));
  EXPECT_EQ(tokenizer.encode("LOW"), (Ids{8, 7, 9}));  // matched as typed: "O" is not "o"
}

TEST(ClipAddedTokens, AddedTokensDecoderLongestMatchFirstAndIdsPastTheVocabulary) {
  TempFolder folder;
  write_toy_tokenizer(folder);
  folder.write("tokenizer_config.json", R"({
    "added_tokens_decoder": {
      "6": {"content": "lo", "lstrip": false, "normalized": true, "rstrip": false, "single_word": false, "special": false},
      "10": {"content": "low", "lstrip": false, "normalized": true, "rstrip": false, "single_word": false, "special": false},
      "11": {"content": "Wo", "special": false}
    }})");
  // With added_tokens_decoder, transformers reads neither of these.
  folder.write("added_tokens.json", R"({"ww": 12})");
  folder.write("special_tokens_map.json", R"({"pad_token": "w"})");
  const auto tokenizer = ClipTokenizer::from_path(folder.path());
  EXPECT_EQ(tokenizer.encode("lowlo"), (Ids{8, 10, 6, 9}));
  EXPECT_EQ(tokenizer.encode("lolow"), (Ids{8, 6, 10, 9}));
  EXPECT_EQ(tokenizer.encode("lol"), (Ids{8, 6, 3, 9}));
  EXPECT_EQ(tokenizer.encode("Wo wo"), (Ids{8, 11, 2, 4, 9}));  // case-sensitive: "wo" is BPE'd
  EXPECT_EQ(tokenizer.encode("ww"), (Ids{8, 2, 5, 9}));
  EXPECT_EQ(tokenizer.pad_id(), 9);
  EXPECT_EQ(tokenizer.vocab_size(), 12);
  EXPECT_EQ(tokenizer.token_text(10), "low");
  EXPECT_EQ(tokenizer.token_id("low"), 10);
  EXPECT_EQ(tokenizer.token_id("lo"), 6);
  EXPECT_EQ(tokenizer.decode({10, 3}), "lowl ");
}

TEST(ClipAddedTokens, AddedTokenWithAVocabularyEntrysContentTakesItsId) {
  // convert_tokens_to_ids looks in the added tokens first, for BPE's symbols too.
  TempFolder folder;
  write_toy_tokenizer(folder);
  folder.write("tokenizer_config.json", R"({"added_tokens_decoder": {"10": {"content": "low</w>"}}})");
  const auto tokenizer = ClipTokenizer::from_path(folder.path());
  EXPECT_EQ(tokenizer.encode("low"), (Ids{8, 10, 9}));
  EXPECT_EQ(tokenizer.encode("low</w>"), (Ids{8, 10, 9}));
}

TEST(ClipAddedTokens, SingleWordTokensMergeIntoTheTextBeside) {
  TempFolder folder;
  write_toy_tokenizer(folder);
  folder.write("tokenizer_config.json", R"({
    "added_tokens_decoder": {"1": {"content": "o", "single_word": true, "lstrip": true, "rstrip": true}}})");
  const auto tokenizer = ClipTokenizer::from_path(folder.path());
  // "l" + "o" merged back into "lo", cleaned on its own; "w" apart (transformers' own quirk).
  EXPECT_EQ(tokenizer.encode("low"), (Ids{8, 0, 4, 5, 9}));
  // Nothing on the left: merged into the right, "ow".
  EXPECT_EQ(tokenizer.encode("ow"), (Ids{8, 1, 5, 9}));
  // Spaces on both sides: a word of its own, the added token.
  EXPECT_EQ(tokenizer.encode("w o w"), (Ids{8, 5, 1, 5, 9}));
}

TEST(ClipAddedTokens, LegacyAddedTokensJsonAndTokenizerJson) {
  TempFolder folder;
  write_toy_tokenizer(folder);
  folder.write("tokenizer_config.json", R"({"model_max_length": 77})");
  folder.write("added_tokens.json", R"({"wow": 10})");
  folder.write("tokenizer.json", R"({"version": "1.0", "added_tokens": [
    {"id": 11, "content": "ww", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false,
     "special": false}]})");
  const auto tokenizer = ClipTokenizer::from_path(folder.path());
  EXPECT_EQ(tokenizer.encode("wow wow"), (Ids{8, 10, 10, 9}));
  EXPECT_EQ(tokenizer.encode("www"), (Ids{8, 11, 5, 9}));
  EXPECT_EQ(tokenizer.vocab_size(), 12);
}

TEST(ClipAddedTokens, SplitSpecialTokensMatchesNothing) {
  TempFolder folder;
  write_toy_tokenizer(folder);
  folder.write("tokenizer_config.json", R"({"pad_token": "o", "split_special_tokens": true})");
  const auto tokenizer = ClipTokenizer::from_path(folder.path());
  EXPECT_EQ(tokenizer.pad_id(), 1);
  EXPECT_EQ(tokenizer.encode("low"), (Ids{8, 7, 9}));
  EXPECT_EQ(tokenizer.encode("low <|endoftext|>"), (Ids{8, 7, 9, 9}));  // CLIP's pattern still has it
}

TEST(ClipAddedTokens, OtherSpecialTokenRolesAreMatchedToo) {
  TempFolder folder;
  write_toy_tokenizer(folder);
  folder.write("special_tokens_map.json", R"({"mask_token": "w", "additional_special_tokens": [{"content": "lo"}],
    "sep_token": null, "cls_token": "not-in-vocab"})");
  const auto tokenizer = ClipTokenizer::from_path(folder.path());
  EXPECT_EQ(tokenizer.encode("low"), (Ids{8, 6, 2, 9}));
  // A special token outside the vocabulary is left unmatched (transformers would give it a new id).
  EXPECT_EQ(tokenizer.vocab_size(), 10);
}

TEST(ClipAddedTokens, MalformedAddedTokenFilesNameTheFile) {
  TempFolder folder;
  write_toy_tokenizer(folder);
  fs::path file = folder.write("tokenizer_config.json", R"({"added_tokens_decoder": {"x": {"content": "lo"}}})");
  std::string message = error_of(folder.path());
  EXPECT_NE(message.find(file.string()), std::string::npos) << message;
  folder.write("tokenizer_config.json", R"({"added_tokens_decoder": {"10": "lo"}})");
  message = error_of(folder.path());
  EXPECT_NE(message.find(file.string()), std::string::npos) << message;

  fs::remove(file);
  file = folder.write("added_tokens.json", R"({"lo": "ten"})");
  message = error_of(folder.path());
  EXPECT_NE(message.find(file.string()), std::string::npos) << message;
  fs::remove(file);
  file = folder.write("tokenizer.json", R"({"added_tokens": [{"content": "lo"}]})");
  message = error_of(folder.path());
  EXPECT_NE(message.find(file.string()), std::string::npos) << message;
}
