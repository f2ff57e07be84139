#include "explain/token_table.h"

#include <iomanip>
#include <sstream>

#include "util/error.h"

namespace diffuse::explain {

namespace {

// Token text for a terminal or a CSV cell: printable, quotes doubled.
std::string csv_cell(const std::string& text) {
  std::string cell = "\"";
  for (const char c : text) cell += c == '"' ? std::string("\"\"") : std::string(1, c);
  return cell + "\"";
}

std::string row_values(const at::Tensor& rows, int position, int count) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(4) << "[";
  const auto row = rows[position];
  const int shown = std::min<int>(count, static_cast<int>(row.size(0)));
  for (int i = 0; i < shown; ++i) out << (i ? ", " : "") << std::setw(7) << row[i].item<float>();
  if (shown < row.size(0)) out << ", ... (" << row.size(0) << ")";
  return out.str() + "]";
}

}  // namespace

TokenTable tokenize_prompt(const text::ClipTokenizer& tokenizer, const std::string& prompt) {
  TokenTable table;
  table.window = tokenizer.max_length();
  const auto ids = tokenizer.encode(prompt);  // start, tokens..., end: untruncated
  const int words = static_cast<int>(ids.size()) - 2;
  const int room = table.window - 2;  // the start and end markers always take a place each
  table.rows.push_back({0, ids.front(), tokenizer.token_text(ids.front()), "start"});
  for (int i = 0; i < words; ++i) {
    const auto id = ids[static_cast<size_t>(i) + 1];
    const bool kept = i < room;
    table.rows.push_back({kept ? i + 1 : -1, id, tokenizer.token_text(id), kept ? "word" : "cut"});
  }
  table.cut = std::max(0, words - room);
  const int end_position = std::min(words, room) + 1;
  table.rows.push_back({end_position, ids.back(), tokenizer.token_text(ids.back()), "end"});
  for (int position = end_position + 1; position < table.window; ++position) {
    table.rows.push_back({position, tokenizer.pad_id(), tokenizer.token_text(tokenizer.pad_id()), "pad"});
  }
  return table;
}

void add_numbers(TokenTable& table, pipeline::StableDiffusionModel& model, const std::string& prompt) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> window_ids(static_cast<size_t>(table.window), 0);
  for (const auto& row : table.rows) {
    if (row.position >= 0) window_ids[static_cast<size_t>(row.position)] = row.id;
  }
  const auto& matrix = model.text_encoder->token_embedding->weight;
  table.embedding_rows = matrix.index_select(0, at::tensor(window_ids, at::kLong)).to(at::kFloat);
  // The plain reading, position for position with the table (prompt_reading.h shows the other).
  table.output_rows = model.encode(prompt, 1, false).context[0].to(at::kFloat);
  if (table.output_rows.size(0) != table.window) {
    throw Error("text encoder: output has " + std::to_string(table.output_rows.size(0)) + " rows, expected " +
                std::to_string(table.window));
  }
}

std::string to_text(const TokenTable& table, int values) {
  std::ostringstream out;
  const bool numbers = table.embedding_rows.defined();
  int shown = 0, pads = 0, first_pad = -1;
  for (const auto& row : table.rows) {
    if (row.role == "pad") {
      if (first_pad < 0) first_pad = row.position;
      ++pads;
      continue;
    }
    ++shown;
    const std::string position = row.position >= 0 ? std::to_string(row.position) : "-";
    out << std::setw(4) << position << "  " << std::setw(6) << row.id << "  " << std::left << std::setw(18)
        << row.text << std::right << "  " << std::setw(5) << row.role;
    if (numbers && row.position >= 0) {
      out << "\n        embedding row " << row_values(table.embedding_rows, row.position, values)
          << "\n        encoder output " << row_values(table.output_rows, row.position, values);
    }
    out << "\n";
    if (row.role == "word" && row.position == table.window - 2 && table.cut > 0) {
      out << "  ---- the " << table.window << "-token window ends here: " << table.cut
          << " more token(s) are cut off ----\n";
    }
  }
  if (pads > 0) {
    const auto& pad = table.rows.back();
    out << std::setw(4) << first_pad << "-" << table.window - 1 << "  padding: " << pads << " x id " << pad.id << " ("
        << pad.text << ")";
    if (numbers) {
      out << "\n        encoder output at " << first_pad << " " << row_values(table.output_rows, first_pad, values);
    }
    out << "\n";
  }
  out << shown - 2 - table.cut << " prompt token(s) in the window of " << table.window;
  if (table.cut > 0) out << ", " << table.cut << " cut";
  if (numbers) {
    out << "; each token is a row of " << table.embedding_rows.size(1) << " numbers in the embedding matrix ["
        << "vocabulary x " << table.embedding_rows.size(1) << "], and the encoder turns the " << table.window
        << " rows into " << table.window << " new ones of " << table.output_rows.size(1) << " (all " << table.window
        << " go to the UNet)";
  }
  out << "\n";
  return out.str();
}

std::string to_csv(const TokenTable& table) {
  if (!table.embedding_rows.defined()) throw InvalidParameter("full", "needs a model");
  std::ostringstream out;
  const int64_t width = table.embedding_rows.size(1);
  out << "position,id,token,role";
  for (int64_t i = 0; i < width; ++i) out << ",embedding_" << i;
  for (int64_t i = 0; i < table.output_rows.size(1); ++i) out << ",output_" << i;
  out << "\n" << std::setprecision(8);
  for (const auto& row : table.rows) {
    if (row.position < 0) continue;
    out << row.position << "," << row.id << "," << csv_cell(row.text) << "," << row.role;
    const auto embedding = table.embedding_rows[row.position].contiguous();
    const auto output = table.output_rows[row.position].contiguous();
    for (int64_t i = 0; i < embedding.size(0); ++i) out << "," << embedding.data_ptr<float>()[i];
    for (int64_t i = 0; i < output.size(0); ++i) out << "," << output.data_ptr<float>()[i];
    out << "\n";
  }
  return out.str();
}

}  // namespace diffuse::explain
