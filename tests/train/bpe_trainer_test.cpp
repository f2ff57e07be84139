#include <gtest/gtest.h>

#include "support/temp_dir.h"
#include "text/clip_tokenizer.h"
#include "train/bpe_trainer.h"
#include "train/shapes_dataset.h"

namespace diffuse::train {
namespace {

using BpeTrainer = test::TempDirTest;

TEST_F(BpeTrainer, ClipTokenizerReadsTheVocabularyAndEveryCaptionWordIsOneToken) {
  const auto data = make_shapes_dataset(400, 32, 1);
  const auto vocabulary = train_bpe(data.captions, 2000);
  write_clip_tokenizer(vocabulary, 24, dir_);
  const auto tokenizer = text::ClipTokenizer::from_path(dir_);
  EXPECT_EQ(tokenizer.max_length(), 24);
  EXPECT_EQ(tokenizer.vocab_size(), static_cast<int64_t>(vocabulary.tokens.size()));
  EXPECT_EQ(tokenizer.end_id(), tokenizer.vocab_size() - 1);
  EXPECT_EQ(tokenizer.pad_id(), tokenizer.end_id());
  // "a large red triangle on a blue background , on the left": 12 words, 12 tokens.
  const auto ids = tokenizer.tokenize("a large red triangle on a blue background, on the left");
  EXPECT_EQ(ids.size(), 12u);
  EXPECT_EQ(tokenizer.token_text(ids[3]), "triangle</w>");
  EXPECT_EQ(tokenizer.decode(tokenizer.tokenize("A Large RED star")), "a large red star ");
  // Words never seen still encode, byte by byte.
  EXPECT_EQ(tokenizer.decode(tokenizer.tokenize("zebra")), "zebra ");
  EXPECT_EQ(tokenizer.encode_padded("").size(), 24u);
}

TEST_F(BpeTrainer, SameCaptionsSameMergesAndTheLimitHolds) {
  const std::vector<std::string> captions{"a cat", "a cat on a mat", "two cats"};
  const auto a = train_bpe(captions, 5), b = train_bpe(captions, 5);
  EXPECT_EQ(a.merges, b.merges);
  EXPECT_EQ(a.merges.size(), 5u);
  EXPECT_EQ(a.tokens.size(), 512u + 5 + 2);
  // "c a" and "a t</w>" both occur 3 times: the tie goes to the smaller pair.
  EXPECT_EQ(a.merges.front(), (std::pair<std::string, std::string>{"a", "t</w>"}));
}

}  // namespace
}  // namespace diffuse::train
