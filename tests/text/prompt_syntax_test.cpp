// AUTOMATIC1111's prompt language against its own outputs (../shared/fixtures/prompt_syntax.json):
// emphasis parsing, prompt-editing schedules and long-prompt chunking on the real CLIP vocabulary.
#include <gtest/gtest.h>

#include "support/fixtures.h"
#include "text/clip_tokenizer.h"
#include "text/prompt_attention.h"
#include "text/prompt_chunks.h"
#include "text/prompt_schedule.h"
#include "util/error.h"

namespace text = diffuse::text;
using nlohmann::json;

namespace {

const json& prompt_syntax() {
  static const json cases = diffuse::test::read_json(diffuse::test::fixtures_dir() / "prompt_syntax.json");
  return cases;
}

const text::ClipTokenizer& clip_tokenizer() {
  static const auto tokenizer = text::ClipTokenizer::from_path(diffuse::test::shared_dir() / "clip");
  return tokenizer;
}

std::string runs_text(const std::vector<text::WeightedText>& runs) {
  std::string out;
  for (const auto& run : runs) out += "[" + run.text + ": " + std::to_string(run.weight) + "] ";
  return out;
}

}  // namespace

TEST(PromptAttention, EveryRecordedParseMatchesAutomatic1111) {
  const auto& cases = prompt_syntax().at("attention");
  ASSERT_EQ(cases.size(), 67u);
  int errors = 0;
  for (const auto& c : cases) {
    const auto prompt = c.at("prompt").get<std::string>();
    SCOPED_TRACE("prompt: " + prompt);
    if (c.contains("error")) {
      ++errors;
      try {
        text::parse_prompt_attention(prompt);
        ADD_FAILURE() << "no error; A1111 raises " << c.at("error");
      } catch (const diffuse::InvalidParameter& e) {
        EXPECT_NE(std::string(e.what()).find("prompt"), std::string::npos) << e.what();
      }
      continue;
    }
    std::vector<text::WeightedText> expected;
    for (const auto& run : c.at("result")) expected.push_back({run.at(0).get<std::string>(), run.at(1).get<double>()});
    const auto actual = text::parse_prompt_attention(prompt);
    // Weights bit-equal: A1111 multiplies Python floats in the same order.
    EXPECT_EQ(actual, expected) << "got " << runs_text(actual) << "\nwant " << runs_text(expected);
  }
  EXPECT_EQ(errors, 2);
}

TEST(PromptAttention, BadWeightIsNamed) {
  try {
    text::parse_prompt_attention("a (word:1.2.3) here");
    FAIL() << "no error";
  } catch (const diffuse::InvalidParameter& e) {
    EXPECT_NE(std::string(e.what()).find("1.2.3"), std::string::npos) << e.what();
  }
}

TEST(PromptSchedule, EveryRecordedScheduleMatchesAutomatic1111) {
  const auto& cases = prompt_syntax().at("schedules");
  ASSERT_EQ(cases.size(), 29u);
  for (const auto& c : cases) {
    const auto prompt = c.at("prompt").get<std::string>();
    const int steps = c.at("steps").get<int>();
    std::optional<int> hires;
    if (!c.at("hires_steps").is_null()) hires = c.at("hires_steps").get<int>();
    SCOPED_TRACE("prompt: " + prompt + " steps " + std::to_string(steps));
    std::vector<text::ScheduledPrompt> expected;
    for (const auto& entry : c.at("result")) expected.push_back({entry.at(0).get<int>(), entry.at(1).get<std::string>()});
    const auto actual = text::prompt_schedule(prompt, steps, hires);
    ASSERT_EQ(actual.size(), expected.size());
    for (size_t i = 0; i < actual.size(); ++i) {
      EXPECT_EQ(actual[i].end_at_step, expected[i].end_at_step) << i;
      EXPECT_EQ(actual[i].text, expected[i].text) << i;
    }
  }
}

TEST(PromptSchedule, AlternationAndEditingNestPerStep) {
  const auto schedule = text::prompt_schedule("a [cat|dog] on [grass:snow:2]", 4);
  const std::vector<text::ScheduledPrompt> expected{
      {1, "a cat on grass"}, {2, "a dog on grass"}, {3, "a cat on snow"}, {4, "a dog on snow"}};
  EXPECT_EQ(schedule, expected);
}

TEST(PromptSchedule, RefusesStepsBelowOneAndDeepNesting) {
  EXPECT_THROW(text::prompt_schedule("a", 0), diffuse::InvalidParameter);
  std::string deep;
  for (int i = 0; i <= text::kMaxScheduleNesting; ++i) deep += "[a:";
  deep += "b";
  for (int i = 0; i <= text::kMaxScheduleNesting; ++i) deep += ":1]";
  EXPECT_THROW(text::prompt_schedule(deep, 10), diffuse::InvalidParameter);
}

TEST(PromptChunks, EveryRecordedChunkingMatchesAutomatic1111) {
  const auto& cases = prompt_syntax().at("chunks");
  ASSERT_EQ(cases.size(), 16u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const auto chunked = text::chunk_prompt(clip_tokenizer(), c.at("prompt").get<std::string>());
    EXPECT_EQ(chunked.token_count, c.at("token_count").get<int>());
    // The fragments tokenize as transformers' CLIPTokenizer does.
    const auto& fragments = c.at("fragment_ids");
    ASSERT_EQ(chunked.runs.size(), fragments.size());
    for (size_t i = 0; i < fragments.size(); ++i) {
      EXPECT_EQ(clip_tokenizer().tokenize(chunked.runs[i].text), fragments[i].get<std::vector<int64_t>>()) << i;
    }
    const auto& chunks = c.at("chunks");
    ASSERT_EQ(chunked.chunks.size(), chunks.size());
    for (size_t i = 0; i < chunks.size(); ++i) {
      EXPECT_EQ(chunked.chunks[i].tokens, chunks[i].at("tokens").get<std::vector<int64_t>>()) << "chunk " << i;
      EXPECT_EQ(chunked.chunks[i].multipliers, chunks[i].at("multipliers").get<std::vector<double>>()) << "chunk " << i;
      EXPECT_TRUE(chunked.chunks[i].embeddings.empty());
    }
  }
}

TEST(PromptChunks, EmbeddingNamesTakeOnePositionPerVectorAndStayInOneChunk) {
  const auto& tokenizer = clip_tokenizer();
  const std::vector<text::EmbeddingName> embeddings{{"tiny-style", tokenizer.tokenize("tiny-style"), 2}};
  ASSERT_EQ(embeddings[0].name_ids.size(), 3u);  // tiny - style
  const auto chunked = text::chunk_prompt(tokenizer, "a painting in (tiny-style:1.2) style", embeddings);
  ASSERT_EQ(chunked.chunks.size(), 1u);
  const auto& chunk = chunked.chunks[0];
  const std::vector<int64_t> head{49406, 320, 3086, 530, 0, 0, 1844, 49407};
  EXPECT_EQ(std::vector<int64_t>(chunk.tokens.begin(), chunk.tokens.begin() + 8), head);
  ASSERT_EQ(chunk.embeddings.size(), 1u);
  EXPECT_EQ(chunk.embeddings[0].position, 4);
  EXPECT_EQ(chunk.embeddings[0].embedding, 0);
  EXPECT_EQ(chunk.multipliers[4], 1.2);
  EXPECT_EQ(chunk.multipliers[5], 1.2);
  EXPECT_EQ(chunked.token_count, 6);

  // 74 words, then the 2-vector embedding: it does not fit in the first chunk's last position.
  std::string prompt;
  for (int i = 0; i < 74; ++i) prompt += "cat ";
  const auto moved = text::chunk_prompt(tokenizer, prompt + "tiny-style", embeddings);
  ASSERT_EQ(moved.chunks.size(), 2u);
  EXPECT_TRUE(moved.chunks[0].embeddings.empty());
  EXPECT_EQ(moved.chunks[0].tokens[75], 49407);  // padded
  ASSERT_EQ(moved.chunks[1].embeddings.size(), 1u);
  EXPECT_EQ(moved.chunks[1].embeddings[0].position, 1);
}

TEST(PromptChunks, EncoderIdsPadAfterTheFirstEnd) {
  const auto chunked = text::chunk_prompt(clip_tokenizer(), "a cat");
  const auto ids = text::encoder_ids(chunked.chunks[0], 49407, 0);
  ASSERT_EQ(ids.size(), 77u);
  EXPECT_EQ(std::vector<int64_t>(ids.begin(), ids.begin() + 5), (std::vector<int64_t>{49406, 320, 2368, 49407, 0}));
  EXPECT_EQ(ids.back(), 0);
  // SD 1.x pads with the end token: the chunk as it is, the same ids as encode_padded.
  EXPECT_EQ(text::encoder_ids(chunked.chunks[0], 49407, 49407), clip_tokenizer().encode_padded("a cat"));
}
