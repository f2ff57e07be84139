// A prompt in AUTOMATIC1111's language as `diffuse tokens` explains it: the steps each text is read
// at, the tags taken out, every chunk's weights and where embeddings go.
#include <gtest/gtest.h>

#include "explain/prompt_reading.h"
#include "pipeline/model.h"
#include "support/fixtures.h"

namespace diffuse::explain {
namespace {

using test::fixtures_dir;

pipeline::StableDiffusionModel& tiny_model() {
  static auto model = [] {
    auto loaded = pipeline::StableDiffusionModel::load(fixtures_dir() / "tiny-sd1/diffusers");
    loaded.add_embedding({"tiny-style", at::ones({2, 32}), {}});
    return loaded;
  }();
  return model;
}

PromptChunker chunker() {
  return [](const std::string& text) { return tiny_model().chunk_prompt(text); };
}

TEST(PromptReading, PlainPromptsNeedNoReading) {
  EXPECT_FALSE(uses_prompt_language("a photo of a cat", 20, chunker()));
  EXPECT_TRUE(uses_prompt_language("a (cat:1.2)", 20, chunker()));
  EXPECT_TRUE(uses_prompt_language("a [cat:dog:5]", 20, chunker()));
  EXPECT_TRUE(uses_prompt_language("a cat BREAK a dog", 20, chunker()));
  EXPECT_TRUE(uses_prompt_language("a cat <lora:x:1>", 20, chunker()));
  EXPECT_TRUE(uses_prompt_language("a painting in tiny-style style", 20, chunker()));
}

TEST(PromptReading, ShowsStepsWeightsTagsAndEmbeddings) {
  const auto text = describe_prompt_reading(tiny_model().tokenizer,
                                            "a (red:1.5) [cat:dog:0.5] in tiny-style <lora:soft:0.6>", 10, chunker(),
                                            {{"tiny-style", {}, 2}});
  EXPECT_EQ(text,
            "extra network <lora:soft:0.6> (taken out of the text)\n"
            "steps 1-5 of 10: \"a (red:1.5) cat in tiny-style \"\n"
            "  6 tokens in 1 chunk of 75\n"
            "  chunk 1:\n"
            "    1: a</w>\n"
            "    1.5: red</w>\n"
            "    1: cat</w> in</w> <tiny-style: 2 vectors>\n"
            "steps 6-10 of 10: \"a (red:1.5) dog in tiny-style \"\n"
            "  6 tokens in 1 chunk of 75\n"
            "  chunk 1:\n"
            "    1: a</w>\n"
            "    1.5: red</w>\n"
            "    1: dog</w> in</w> <tiny-style: 2 vectors>\n");
}

TEST(PromptReading, AlternationListsEachTextOnceWithItsSteps) {
  const auto text = describe_prompt_reading(tiny_model().tokenizer, "a [cat|dog]", 5, chunker());
  EXPECT_EQ(text,
            "steps 1, 3, 5 of 5: \"a cat\"\n"
            "  2 tokens in 1 chunk of 75\n"
            "  chunk 1:\n"
            "    1: a</w> cat</w>\n"
            "steps 2, 4 of 5: \"a dog\"\n"
            "  2 tokens in 1 chunk of 75\n"
            "  chunk 1:\n"
            "    1: a</w> dog</w>\n");
}

TEST(PromptReading, ShowsEachChunk) {
  const auto text = describe_prompt_reading(tiny_model().tokenizer, "a cat BREAK [a dog]", 4, chunker());
  EXPECT_EQ(text,
            "steps 1-4 of 4: \"a cat BREAK [a dog]\"\n"
            "  77 tokens in 2 chunks of 75\n"
            "  chunk 1:\n"
            "    1: a</w> cat</w>\n"
            "  chunk 2:\n"
            "    0.909091: a</w> dog</w>\n");
}

// The same reading as data: A1111's pieces with their weights, each text with its step ranges, and
// every chunk's ids, weights and embedding positions over the encoder's whole context.
TEST(PromptReading, AsJson) {
  const auto& tokenizer = tiny_model().tokenizer;
  const auto reading = prompt_reading_json(tokenizer, "a (red:1.5) [cat|dog] tiny-style <lora:soft:0.6:te=0.5>", 3,
                                           chunker(), {{"tiny-style", {}, 2}});
  EXPECT_EQ(reading.at("steps"), 3);
  EXPECT_EQ(reading.at("extra_networks").dump(),
            R"([{"kind":"lora","named":{"te":"0.5"},"positional":["soft","0.6"]}])");
  const auto& texts = reading.at("texts");
  ASSERT_EQ(texts.size(), 2u);
  EXPECT_EQ(texts[0].at("text"), "a (red:1.5) cat tiny-style ");
  EXPECT_EQ(texts[0].at("steps").dump(), R"([{"from":1,"to":1},{"from":3,"to":3}])");
  EXPECT_EQ(texts[1].at("text"), "a (red:1.5) dog tiny-style ");
  EXPECT_EQ(texts[1].at("steps").dump(), R"([{"from":2,"to":2}])");
  EXPECT_EQ(texts[0].at("pieces").dump(),
            R"([{"text":"a ","weight":1.0},{"text":"red","weight":1.5},{"text":" cat tiny-style ","weight":1.0}])");
  EXPECT_EQ(texts[0].at("token_count"), 5);
  const auto& chunk = texts[0].at("chunks").at(0);
  const auto ids = chunk.at("ids").get<std::vector<int64_t>>();
  const auto weights = chunk.at("weights").get<std::vector<double>>();
  ASSERT_EQ(ids.size(), 77u);
  ASSERT_EQ(weights.size(), 77u);
  const std::vector<int64_t> start = {49406, 320, 736, 2368, 0, 0, 49407};  // the embedding: id 0 twice
  EXPECT_EQ(std::vector<int64_t>(ids.begin(), ids.begin() + 7), start);
  EXPECT_EQ(std::vector<double>(weights.begin(), weights.begin() + 7),
            (std::vector<double>{1.0, 1.0, 1.5, 1.0, 1.0, 1.0, 1.0}));
  EXPECT_EQ(chunk.at("tokens").at(2), "red</w>");
  EXPECT_EQ(chunk.at("embeddings").dump(), R"([{"name":"tiny-style","position":4,"vectors":2}])");
  EXPECT_EQ(ids.back(), tokenizer.end_id());
}

}  // namespace
}  // namespace diffuse::explain
