// The prompt as numbers: token rows must be the embedding matrix's rows, and the encoder's output rows
// the reference text encoder's (diffusers/transformers, tiny-sd1 manifest) within 1e-4 relative.
#include <gtest/gtest.h>

#include "explain/token_table.h"
#include "support/fixtures.h"

namespace diffuse::explain {
namespace {

using test::fixtures_dir;

pipeline::StableDiffusionModel& tiny_model() {
  static auto model = pipeline::StableDiffusionModel::load(fixtures_dir() / "tiny-sd1/diffusers");
  return model;
}

TEST(TokenTable, MarksStartEndAndPadding) {
  const auto table = tokenize_prompt(tiny_model().tokenizer, "a photo of a cat");
  EXPECT_EQ(table.window, 77);
  ASSERT_EQ(table.rows.size(), 77u);
  EXPECT_EQ(table.rows[0].role, "start");
  EXPECT_EQ(table.rows[0].id, 49406);
  EXPECT_EQ(table.rows[2].text, "photo</w>");
  EXPECT_EQ(table.rows[2].id, 1125);
  EXPECT_EQ(table.rows[6].role, "end");
  EXPECT_EQ(table.rows[6].position, 6);
  EXPECT_EQ(table.rows[7].role, "pad");
  EXPECT_EQ(table.cut, 0);
}

TEST(TokenTable, ShowsWhereTheWindowCuts) {
  std::string prompt;
  for (int i = 0; i < 80; ++i) prompt += "cat ";
  const auto table = tokenize_prompt(tiny_model().tokenizer, prompt);
  EXPECT_EQ(table.cut, 80 - 75);
  int cut_rows = 0;
  for (const auto& row : table.rows) cut_rows += row.role == "cut" ? 1 : 0;
  EXPECT_EQ(cut_rows, 5);
  EXPECT_EQ(table.rows.back().role, "end");
  EXPECT_EQ(table.rows.back().position, 76);
  EXPECT_NE(to_text(table, 4).find("window ends here: 5 more"), std::string::npos);
}

TEST(TokenTable, NumbersAreEmbeddingRowsAndReferenceEncoderRows) {
  auto& model = tiny_model();
  const auto root = fixtures_dir() / "tiny-sd1";
  const auto manifest = test::read_json(root / "manifest.json");
  ASSERT_FALSE(manifest.at("text_encoder").empty());
  for (const auto& entry : manifest.at("text_encoder")) {
    const auto prompt = entry.at("prompt").get<std::string>();
    auto table = tokenize_prompt(model.tokenizer, prompt);
    add_numbers(table, model, prompt);
    const auto ids = entry.at("input_ids").get<std::vector<int64_t>>();
    const auto& matrix = model.text_encoder->token_embedding->weight;
    for (const auto& row : table.rows) {
      ASSERT_GE(row.position, 0);
      EXPECT_EQ(row.id, ids[static_cast<size_t>(row.position)]) << prompt << " at " << row.position;
      EXPECT_TRUE(at::equal(table.embedding_rows[row.position], matrix[row.id])) << prompt << " at " << row.position;
    }
    const auto expected = test::read_reference(root / "refs" / entry.at("last_hidden_state").get<std::string>())[0];
    EXPECT_LT(test::relative_max_error(table.output_rows, expected), 1e-4) << prompt;
  }
}

TEST(TokenTable, CsvHasEveryPositionAndNumber) {
  auto& model = tiny_model();
  auto table = tokenize_prompt(model.tokenizer, "a photo of a cat");
  add_numbers(table, model, "a photo of a cat");
  const auto csv = to_csv(table);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 77);
  const auto header = csv.substr(0, csv.find('\n'));
  EXPECT_EQ(std::count(header.begin(), header.end(), ','), 3 + 32 + 32);
  EXPECT_NE(csv.find("\n2,1125,\"photo</w>\",word,"), std::string::npos);
}

}  // namespace
}  // namespace diffuse::explain
