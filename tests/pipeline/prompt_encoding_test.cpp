// AUTOMATIC1111's prompt language through the model: emphasis on the encoder output, long prompts
// as concatenated chunks, textual-inversion vectors against diffusers, and the per-step conditioning
// of prompt editing with the negative prompt padded to the prompt's chunks. tiny-sd1 (CLIP's real
// vocabulary, a 32-wide random text encoder).
#include <gtest/gtest.h>

#include "pipeline/conditioning.h"
#include "pipeline/generation.h"
#include "support/fixtures.h"
#include "text/prompt_chunks.h"
#include "util/error.h"

namespace diffuse::pipeline {
namespace {

using test::fixtures_dir;
using test::read_reference;
using test::relative_max_error;

StableDiffusionModel& tiny_sd1() {
  static torch::NoGradGuard no_grad;  // the tests call the encoder directly too
  static auto model = StableDiffusionModel::load(fixtures_dir() / "tiny-sd1" / "diffusers");
  return model;
}

// The tiny-style embedding of ../shared/fixtures/textual_inversion, as diffusers loaded it.
TextualInversion tiny_style() {
  return {"tiny-style", read_reference(fixtures_dir() / "textual_inversion" / "refs" / "embedding_vectors.bin"), {}};
}

std::string repeated(const std::string& word, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += (i ? " " : "") + word;
  return out;
}

TEST(PromptEncoding, PlainPromptsGiveDiffusersNumbersBitForBit) {
  auto& model = tiny_sd1();
  for (const std::string prompt : {"a photo of a cat", "A Painting of a SUNSET, by Claude Monet; 35mm, f/1.8 :)", ""}) {
    const auto syntax = model.encode(prompt);
    EXPECT_EQ(syntax.chunks, 1);
    EXPECT_TRUE(syntax.context.equal(model.encode(prompt, 1, false).context)) << prompt;
  }
}

// "a (photo:1.3) of a [cat]": start a photo of a cat end ...; photo x1.3, cat / 1.1.
at::Tensor emphasis_multipliers() {
  auto multipliers = at::ones({77}, at::kFloat);
  multipliers[2] = 1.3;
  multipliers[5] = 1 / 1.1;
  return multipliers.reshape({1, -1, 1});
}

TEST(PromptEncoding, EmphasisScalesEachTokenThenRestoresTheMean) {
  // tiny-sd1's final layer norm has no bias, so its output has mean 0: give it one, as trained
  // encoders have, to see the mean restored.
  torch::NoGradGuard no_grad;
  auto model = StableDiffusionModel::load(fixtures_dir() / "tiny-sd1" / "diffusers");
  model.text_encoder->final_layer_norm->bias.add_(0.25);
  const auto weighted = model.encode("a (photo:1.3) of a [cat]").context;
  const auto plain = model.encode("a photo of a cat", 1, false).context;
  auto expected = plain * emphasis_multipliers();
  expected = expected * (plain.mean() / expected.mean());
  EXPECT_LT(relative_max_error(weighted, expected), 1e-6);
  EXPECT_NEAR(weighted.mean().item<double>(), plain.mean().item<double>(), 1e-6);
  EXPECT_GT((weighted - plain).abs().max().item<double>(), 1e-3);  // the weights did something
}

TEST(PromptEncoding, EmphasisOnAnEncoderWithMeanZeroOnlyScales) {
  // AUTOMATIC1111 would divide 0 by 0 here.
  auto& model = tiny_sd1();
  const auto plain = model.encode("a photo of a cat", 1, false).context;
  ASSERT_LT(std::abs(plain.mean().item<double>()), 1e-7);
  const auto weighted = model.encode("a (photo:1.3) of a [cat]").context;
  EXPECT_FALSE(weighted.isnan().any().item<bool>());
  EXPECT_LT(relative_max_error(weighted, plain * emphasis_multipliers()), 1e-6);
}

TEST(PromptEncoding, LongPromptsAreChunksEncodedOnTheirOwnAndConcatenated) {
  auto& model = tiny_sd1();
  const auto cases = test::read_json(fixtures_dir() / "prompt_syntax.json").at("chunks");
  for (const auto& c : cases) {
    if (c.at("name") != "150_plus" && c.at("name") != "break_simple") continue;
    SCOPED_TRACE(c.at("name").get<std::string>());
    const auto encoded = model.encode(c.at("prompt").get<std::string>());
    const auto& chunks = c.at("chunks");
    ASSERT_EQ(encoded.chunks, static_cast<int>(chunks.size()));
    ASSERT_EQ(encoded.context.size(1), 77 * encoded.chunks);
    for (size_t i = 0; i < chunks.size(); ++i) {
      // AUTOMATIC1111's token ids for the chunk, through the encoder alone.
      const auto ids = at::tensor(chunks[i].at("tokens").get<std::vector<int64_t>>(), at::kLong).unsqueeze(0);
      const auto expected = model.text_encoder->encode(ids);
      EXPECT_TRUE(encoded.context.narrow(1, static_cast<int64_t>(77 * i), 77).equal(expected)) << "chunk " << i;
    }
  }
  // Without the prompt language the text is cut at CLIP's window, as diffusers cuts it.
  EXPECT_EQ(model.encode(repeated("cat", 100), 1, false).context.size(1), 77);
}

TEST(PromptEncoding, TextualInversionMatchesDiffusers) {
  auto& model = tiny_sd1();
  model.add_embedding(tiny_style());
  const auto manifest = test::read_json(fixtures_dir() / "textual_inversion" / "manifest.json");
  const auto& reference = manifest.at("text_encoder").at(0);
  const auto prompt = reference.at("prompt").get<std::string>();
  const auto chunked = model.chunk_prompt(prompt);
  ASSERT_EQ(chunked.chunks.size(), 1u);
  ASSERT_EQ(chunked.chunks[0].embeddings.size(), 1u);
  EXPECT_EQ(chunked.chunks[0].embeddings[0].position, 4);  // diffusers' ids 49408, 49409 sit at 4 and 5
  const auto expected = read_reference(fixtures_dir() / "textual_inversion" / "refs" /
                                       reference.at("last_hidden_state").get<std::string>());
  const double error = relative_max_error(model.encode(prompt).context, expected.reshape({1, 77, -1}));
  std::printf("textual inversion: last_hidden_state %.2e\n", error);
  EXPECT_LT(error, 1e-5);
  // Other prompts are untouched.
  EXPECT_TRUE(model.encode("a photo of a cat").context.equal(model.encode("a photo of a cat", 1, false).context));
}

TEST(PromptEncoding, EmbeddingsOfTheWrongWidthAreRefusedByName) {
  auto& model = tiny_sd1();
  try {
    model.add_embedding({"wide-style", at::zeros({2, 768}), {}});
    FAIL() << "no error";
  } catch (const InvalidParameter& e) {
    EXPECT_EQ(e.parameter(), "embedding");
    EXPECT_NE(std::string(e.what()).find("'wide-style' has vectors [2, 768]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[n, 32]"), std::string::npos) << e.what();
  }
}

TEST(StepConditioningTest, PromptEditingPicksEachStepsTextAndPadsTheNegative) {
  auto& model = tiny_sd1();
  GenerationRequest request;
  request.prompt = "[a red cat:a blue dog:2], " + repeated("fur", 80);  // two chunks either way
  request.negative_prompt = "blurry";
  request.steps = 6;
  request.width = request.height = 64;
  const auto resolved = resolve(request, model);
  StepConditioning conditioning(model, resolved);
  ASSERT_TRUE(conditioning.guided());
  ASSERT_EQ(conditioning.prompt_schedule().size(), 2u);
  const auto cat = model.encode("a red cat, " + repeated("fur", 80)).context;
  const auto dog = model.encode("a blue dog, " + repeated("fur", 80)).context;
  const auto negative = at::cat({model.encode("blurry").context, model.encode("").context}, 1);
  // AUTOMATIC1111 keeps the first text while the 0-based step is <= 2: steps 0, 1, 2.
  for (int step = 0; step < 6; ++step) {
    const auto& context = conditioning.at_step(step).context;
    ASSERT_EQ(context.sizes(), (at::IntArrayRef{2, 154, 32}));
    EXPECT_TRUE(context[0].equal(negative[0])) << step;
    EXPECT_TRUE(context[1].equal((step <= 2 ? cat : dog)[0])) << step;
  }
}

TEST(StepConditioningTest, AlternationChangesTextEveryStep) {
  auto& model = tiny_sd1();
  GenerationRequest request;
  request.prompt = "a [cat|dog]";
  request.cfg_scale = 1;  // unguided: the batch is the prompt alone
  request.steps = 4;
  const auto resolved = resolve(request, model);
  StepConditioning conditioning(model, resolved);
  ASSERT_FALSE(conditioning.guided());
  const auto cat = model.encode("a cat").context, dog = model.encode("a dog").context;
  // The schedule is cat, dog, cat, dog ending at steps 1, 2, 3, 4; AUTOMATIC1111 compares the
  // 0-based step with those ends, so step 0 and 1 both read "a cat".
  const std::vector<at::Tensor> expected{cat, cat, dog, cat};
  for (int step = 0; step < 4; ++step) EXPECT_TRUE(conditioning.at_step(step).context.equal(expected[step])) << step;
}

TEST(StepConditioningTest, RunsFollowTheScheduleStepByStep) {
  auto& model = tiny_sd1();
  GenerationRequest request;
  request.width = request.height = 64;
  request.steps = 6;
  request.cfg_scale = 6;
  const auto run = [&](const std::string& prompt) {
    request.prompt = prompt;
    return generate_image(model, resolve(request, model)).latents;
  };
  const auto cat = run("a photo of a cat"), dog = run("a photo of a dog");
  // A switch after the last step never happens; one in the middle gives neither run.
  EXPECT_TRUE(run("a photo of a [cat:dog:99]").equal(cat));
  const auto switched = run("a photo of a [cat:dog:3]");
  EXPECT_FALSE(switched.equal(cat));
  EXPECT_FALSE(switched.equal(dog));
}

TEST(PromptEncoding, MalformedWeightsAreRefusedBeforeAnythingRuns) {
  GenerationRequest request;
  request.prompt = "a (cat:1.2.3)";
  try {
    validate(request);
    FAIL() << "no error";
  } catch (const InvalidParameter& e) {
    EXPECT_EQ(e.parameter(), "prompt");
    EXPECT_NE(std::string(e.what()).find("1.2.3"), std::string::npos) << e.what();
  }
  request.prompt = "a cat";
  request.negative_prompt = "[blurry:(bad:1.2.3):3]";
  try {
    validate(request);
    FAIL() << "no error";
  } catch (const InvalidParameter& e) {
    EXPECT_EQ(e.parameter(), "negative_prompt") << e.what();
  }
  request.prompt_syntax = false;  // read literally: nothing to refuse
  EXPECT_NO_THROW(validate(request));
}

}  // namespace
}  // namespace diffuse::pipeline
