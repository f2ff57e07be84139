#include "text/clip_vocabulary.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>
#include <zlib.h>

#include "util/error.h"
#include "util/json.h"

namespace diffuse::text::detail {

namespace fs = std::filesystem;

namespace {

// CLIP keeps 49152 - 256 - 2 merges so that the vocabulary is exactly 49408 entries.
constexpr size_t kClipMergeCount = 49152 - 256 - 2;

std::string utf8_of(char32_t c) {
  std::string out;
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {  // bytes_to_unicode never goes past U+0143
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
  return out;
}

// GPT-2's bytes_to_unicode(), in its dict order: the printable Latin-1 bytes stand for themselves, then the
// other 68 bytes take U+0100 onwards, so that BPE never sees spaces or control characters.
std::vector<std::pair<uint8_t, std::string>> bytes_to_unicode() {
  std::vector<std::pair<uint8_t, std::string>> table;
  std::array<bool, 256> direct{};
  for (int b = 0; b < 256; ++b) {
    direct[static_cast<size_t>(b)] = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    if (direct[static_cast<size_t>(b)]) table.emplace_back(static_cast<uint8_t>(b), utf8_of(static_cast<char32_t>(b)));
  }
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    if (!direct[static_cast<size_t>(b)]) table.emplace_back(static_cast<uint8_t>(b), utf8_of(next++));
  }
  return table;
}

std::shared_ptr<ClipVocabulary> new_vocabulary(const fs::path& source) {
  auto vocab = std::make_shared<ClipVocabulary>();
  vocab->source = source;
  for (const auto& [byte, text] : bytes_to_unicode()) {
    vocab->byte_encoder[byte] = text;
    vocab->byte_decoder[text] = byte;
  }
  return vocab;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> split_whitespace(const std::string& line) {
  std::vector<std::string> parts;
  std::istringstream in(line);
  for (std::string part; in >> part;) parts.push_back(part);
  return parts;
}

// merge lines -> ranks; `first_line` is the 1-based line number of lines[0], for messages.
void add_merges(ClipVocabulary& vocab, const std::vector<std::string>& lines, size_t first_line,
                const fs::path& file) {
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::vector<std::string> parts = split_whitespace(lines[i]);
    if (parts.size() != 2) {
      throw Error(file.string() + ":" + std::to_string(first_line + i) + ": expected a merge of two symbols, got '" +
                  lines[i] + "'");
    }
    vocab.merge_ranks.emplace(parts[0] + " " + parts[1], static_cast<int>(vocab.merge_ranks.size()));
  }
}

void finish(ClipVocabulary& vocab) {
  for (const auto& [token, id] : vocab.encoder) {
    vocab.decoder[id] = token;
    vocab.max_id = std::max(vocab.max_id, id);
  }
  for (const char* special : {kStartOfText, kEndOfText}) {
    if (vocab.encoder.count(special) == 0) {
      throw Error(vocab.vocab_file.string() + ": the vocabulary has no '" + special + "' token");
    }
  }
  vocab.start_id = vocab.encoder.at(kStartOfText);
  vocab.end_id = vocab.encoder.at(kEndOfText);
}

std::string read_text_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string read_gzip_file(const fs::path& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw Error("cannot open " + path.string());
  std::string text;
  std::vector<char> buffer(1 << 16);
  while (true) {
    const int n = gzread(file, buffer.data(), static_cast<unsigned>(buffer.size()));
    if (n < 0) {
      int code = 0;
      const std::string message = gzerror(file, &code);
      gzclose(file);
      throw Error(path.string() + ": not a readable gzip file (" + message + ")");
    }
    if (n == 0) break;
    text.append(buffer.data(), static_cast<size_t>(n));
  }
  gzclose(file);
  return text;
}

nlohmann::json parse_json_file(const fs::path& path) {
  const std::string text = read_text_file(path);
  if (json_nests_deeper_than(text)) {
    throw Error(path.string() + ": malformed JSON: nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path.string() + ": malformed JSON: " + e.what());
  }
}

// A special token in a tokenizer config: "<|endoftext|>" or {"content": "<|endoftext|>", ...}.
std::optional<std::string> token_content(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string()) {
    return value["content"].get<std::string>();
  }
  return std::nullopt;
}

bool flag(const nlohmann::json& token, const char* key, bool fallback) {
  return token.contains(key) && token[key].is_boolean() ? token[key].get<bool>() : fallback;
}

// A token of a tokenizer config as transformers reads it: a plain string is AddedToken(content) with no
// stripping; an object gives AddedToken's fields. `special`: the token names a special-token role.
// nullopt where a role is not a token (null, as transformers reads an unset role); a malformed listed
// token throws naming the file.
std::optional<AddedToken> added_token_spec(const nlohmann::json& value, bool special, const fs::path& file,
                                               const std::string& key) {
  const std::optional<std::string> content = token_content(value);
  if (!content) {
    if (value.is_null() || special) return std::nullopt;  // a role set to something else: left unset
    throw Error(file.string() + ": " + key + " is not a token string or {\"content\": ...}: " + value.dump());
  }
  AddedToken spec;
  spec.content = *content;
  spec.special = special;
  spec.normalized = !special;
  if (value.is_object()) {
    spec.single_word = flag(value, "single_word", false);
    spec.lstrip = flag(value, "lstrip", false);
    spec.rstrip = flag(value, "rstrip", false);
    spec.normalized = flag(value, "normalized", true);
    spec.special = special || flag(value, "special", false);  // a role is special whatever it says
  }
  return spec;
}

// tokenizer_config.json's added_tokens_decoder: {"49406": {"content": "<|startoftext|>", ...}, ...}.
void read_added_tokens_decoder(const nlohmann::json& decoder, const fs::path& file, std::vector<AddedToken>& out) {
  if (!decoder.is_object()) throw Error(file.string() + ": added_tokens_decoder is not a JSON object");
  for (const auto& [key, token] : decoder.items()) {
    int64_t id = -1;
    try {
      size_t used = 0;
      id = std::stoll(key, &used);
      if (used != key.size()) id = -1;
    } catch (const std::exception&) {
      id = -1;
    }
    if (id < 0) throw Error(file.string() + ": added_tokens_decoder has a key that is not an id: '" + key + "'");
    if (!token.is_object()) {
      throw Error(file.string() + ": added_tokens_decoder[" + key + "] is not an AddedToken object: " + token.dump());
    }
    auto spec = added_token_spec(token, false, file, "added_tokens_decoder[" + key + "]");
    if (!spec) throw Error(file.string() + ": added_tokens_decoder[" + key + "] has no content");
    spec->id = id;
    out.push_back(*spec);
  }
}

}  // namespace

std::shared_ptr<ClipVocabulary> load_vocab_json_and_merges(const fs::path& vocab_json, const fs::path& merges_txt,
                                                           const fs::path& source) {
  auto vocab = new_vocabulary(source);
  vocab->vocab_file = vocab_json;
  const nlohmann::json table = parse_json_file(vocab_json);
  if (!table.is_object() || table.empty()) {
    throw Error(vocab_json.string() + ": expected a JSON object mapping tokens to ids");
  }
  for (const auto& [token, id] : table.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0) {
      throw Error(vocab_json.string() + ": token '" + token + "' has no valid id (" + id.dump() + ")");
    }
    vocab->encoder[token] = id.get<int64_t>();
  }
  std::vector<std::string> lines = split_lines(read_text_file(merges_txt));
  size_t first_line = 1;
  if (!lines.empty() && lines.front().rfind("#version", 0) == 0) {
    lines.erase(lines.begin());
    first_line = 2;
  }
  while (!lines.empty() && split_whitespace(lines.back()).empty()) lines.pop_back();
  if (lines.empty()) throw Error(merges_txt.string() + ": no merges");
  add_merges(*vocab, lines, first_line, merges_txt);
  finish(*vocab);
  return vocab;
}

std::shared_ptr<ClipVocabulary> load_clip_bpe_gz(const fs::path& gz_path) {
  auto vocab = new_vocabulary(gz_path);
  vocab->vocab_file = gz_path;
  std::vector<std::string> lines = split_lines(read_gzip_file(gz_path));
  if (lines.size() < 2) throw Error(gz_path.string() + ": no merges");
  // Python's merges[1:49152-256-2+1]: skip the version line, keep at most kClipMergeCount.
  std::vector<std::string> merges(lines.begin() + 1, lines.begin() + static_cast<std::ptrdiff_t>(
                                                                          std::min(lines.size(), kClipMergeCount + 1)));
  add_merges(*vocab, merges, 2, gz_path);

  std::vector<std::string> tokens;
  for (const auto& [byte, text] : bytes_to_unicode()) tokens.push_back(text);
  for (size_t i = 0; i < 256; ++i) tokens.push_back(tokens[i] + "</w>");
  for (const std::string& merge : merges) {
    const std::vector<std::string> parts = split_whitespace(merge);
    tokens.push_back(parts[0] + parts[1]);
  }
  tokens.push_back(kStartOfText);
  tokens.push_back(kEndOfText);
  for (size_t i = 0; i < tokens.size(); ++i) vocab->encoder[tokens[i]] = static_cast<int64_t>(i);
  finish(*vocab);
  return vocab;
}

TokenizerSettings read_tokenizer_settings(const fs::path& folder) {
  TokenizerSettings settings;
  // The roles of transformers' SPECIAL_TOKENS_ATTRIBUTES, in its order.
  static const char* const kRoles[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                       "pad_token", "cls_token", "mask_token"};
  std::vector<std::optional<AddedToken>> roles(std::size(kRoles));
  std::vector<AddedToken> additional;
  bool has_added_tokens_decoder = false;
  for (const char* name : {"tokenizer_config.json", "special_tokens_map.json"}) {
    const fs::path file = folder / name;
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) continue;
    // transformers reads special_tokens_map.json only for a tokenizer_config.json of the legacy layout.
    if (has_added_tokens_decoder) continue;
    const nlohmann::json config = parse_json_file(file);
    if (!config.is_object()) throw Error(file.string() + ": expected a JSON object");
    if (!settings.pad_token && config.contains("pad_token")) {
      settings.pad_token = token_content(config["pad_token"]);
      if (settings.pad_token) settings.pad_token_file = file;
    }
    for (size_t r = 0; r < roles.size(); ++r) {
      if (!roles[r] && config.contains(kRoles[r])) roles[r] = added_token_spec(config[kRoles[r]], true, file, kRoles[r]);
    }
    if (config.contains("additional_special_tokens") && config["additional_special_tokens"].is_array()) {
      for (const auto& value : config["additional_special_tokens"]) {
        auto spec = added_token_spec(value, true, file, "additional_special_tokens");
        if (!spec) continue;
        const bool seen = std::any_of(additional.begin(), additional.end(),
                                      [&](const AddedToken& a) { return a.content == spec->content; });
        if (!seen) additional.push_back(*spec);
      }
    }
    if (std::string(name) == "tokenizer_config.json") {
      if (config.contains("added_tokens_decoder")) {
        has_added_tokens_decoder = true;
        read_added_tokens_decoder(config["added_tokens_decoder"], file, settings.added_tokens);
      }
      if (config.contains("split_special_tokens") && config["split_special_tokens"].is_boolean()) {
        settings.split_special_tokens = config["split_special_tokens"].get<bool>();
      }
    }
    // transformers writes 1e30 for "no limit"; only a real length is taken.
    if (!settings.max_length && config.contains("model_max_length") && config["model_max_length"].is_number()) {
      const double length = config["model_max_length"].get<double>();
      if (length >= 2 && length <= 1e6) settings.max_length = static_cast<int>(length);
    }
  }
  for (size_t r = 0; r < roles.size(); ++r) {
    if (roles[r]) settings.special_tokens.emplace_back(kRoles[r], *roles[r]);
  }
  for (const AddedToken& spec : additional) settings.special_tokens.emplace_back("additional_special_tokens", spec);

  // transformers reads these two only for a tokenizer_config.json without added_tokens_decoder.
  if (!has_added_tokens_decoder) {
    const fs::path added_json = folder / "added_tokens.json";
    std::error_code ec;
    if (fs::is_regular_file(added_json, ec)) {
      const nlohmann::json table = parse_json_file(added_json);
      if (!table.is_object()) throw Error(added_json.string() + ": expected a JSON object mapping tokens to ids");
      for (const auto& [content, id] : table.items()) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0) {
          throw Error(added_json.string() + ": token '" + content + "' has no valid id (" + id.dump() + ")");
        }
        AddedToken spec;
        spec.content = content;
        spec.id = id.get<int64_t>();
        spec.special = std::any_of(settings.special_tokens.begin(), settings.special_tokens.end(),
                                   [&content = content](const auto& role) { return role.second.content == content; });
        spec.normalized = !spec.special;
        settings.added_tokens.push_back(spec);
      }
    }
    const fs::path tokenizer_json = folder / "tokenizer.json";
    if (fs::is_regular_file(tokenizer_json, ec)) {
      const nlohmann::json tokenizer = parse_json_file(tokenizer_json);
      if (tokenizer.is_object() && tokenizer.contains("added_tokens")) {
        const nlohmann::json& list = tokenizer["added_tokens"];
        if (!list.is_array()) throw Error(tokenizer_json.string() + ": \"added_tokens\" is not a list");
        for (const auto& entry : list) {
          if (!entry.is_object() || !entry.contains("id") || !entry["id"].is_number_integer() ||
              entry["id"].get<int64_t>() < 0) {
            throw Error(tokenizer_json.string() + ": an added token without a valid id: " + entry.dump());
          }
          auto spec = added_token_spec(entry, false, tokenizer_json, "added_tokens");
          if (!spec) throw Error(tokenizer_json.string() + ": an added token without content: " + entry.dump());
          spec->id = entry["id"].get<int64_t>();
          settings.added_tokens.push_back(*spec);
        }
      }
    }
  }
  return settings;
}

}  // namespace diffuse::text::detail
