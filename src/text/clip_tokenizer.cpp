#include "text/clip_tokenizer.h"

#include <climits>
#include <mutex>
#include <unordered_map>

#include <unicode/regex.h>
#include <unicode/unistr.h>

#include "text/clip_text_clean.h"
#include "text/clip_vocabulary.h"
#include "text/unicode_text.h"
#include "util/error.h"

namespace diffuse::text {

namespace detail {
// BPE results per pre-token. Shared by copies of a tokenizer (the result depends only on the vocabulary),
// bounded so a long-running server cannot grow it without limit.
struct ClipWordCache {
  static constexpr size_t kMaxWords = 100000;
  std::mutex mutex;
  std::unordered_map<std::string, std::vector<int64_t>> words;
};
}  // namespace detail

namespace fs = std::filesystem;

namespace {

// CLIP's pre-tokenizer pattern. ICU's \p{L} / \p{N} / \s agree with Python's `regex` module here: after
// cleaning, the only whitespace left is U+0020.
const icu::RegexPattern& pre_token_pattern() {
  static const std::unique_ptr<icu::RegexPattern> pattern = [] {
    const char* source = R"(<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+)";
    UParseError where;
    UErrorCode status = U_ZERO_ERROR;
    std::unique_ptr<icu::RegexPattern> compiled(
        icu::RegexPattern::compile(icu::UnicodeString::fromUTF8(source), UREGEX_CASE_INSENSITIVE, where, status));
    if (U_FAILURE(status)) throw Error(std::string("cannot compile the CLIP pre-token pattern: ") + u_errorName(status));
    return compiled;
  }();
  return *pattern;
}

std::vector<std::string> utf8_characters(const std::string& text) {
  std::vector<std::string> chars;
  for (size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    const size_t length = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    chars.push_back(text.substr(i, length));
    i += length;
  }
  return chars;
}

// CLIP's bpe(): symbols are the piece's characters with "</w>" on the last; repeatedly merge every
// occurrence (left to right) of the adjacent pair with the lowest rank, until no pair has a rank.
std::vector<std::string> bpe(const detail::ClipVocabulary& vocab, const std::string& piece) {
  std::vector<std::string> word = utf8_characters(piece);
  word.back() += "</w>";
  while (word.size() > 1) {
    int best_rank = INT_MAX;
    size_t best_at = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = vocab.merge_ranks.find(word[i] + " " + word[i + 1]);
      if (it != vocab.merge_ranks.end() && it->second < best_rank) {
        best_rank = it->second;
        best_at = i;
      }
    }
    if (best_rank == INT_MAX) break;
    const std::string first = word[best_at];
    const std::string second = word[best_at + 1];
    std::vector<std::string> merged;
    merged.reserve(word.size());
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
        merged.push_back(first + second);
        i += 2;
      } else {
        merged.push_back(word[i++]);
      }
    }
    word = std::move(merged);
  }
  return word;
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void require_file(const fs::path& file, const std::string& context) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) throw Error(context + ": missing " + file.string());
}

}  // namespace

ClipTokenizer::ClipTokenizer(std::shared_ptr<const detail::ClipVocabulary> vocab, int64_t pad_id, int max_length)
    : vocab_(std::move(vocab)), cache_(std::make_shared<detail::ClipWordCache>()), pad_id_(pad_id),
      max_length_(max_length) {}

ClipTokenizer ClipTokenizer::from_path(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error("tokenizer path does not exist: " + path.string());
  const std::string name = path.filename().string();
  if (!fs::is_directory(path, ec) && ends_with(name, ".gz")) {
    auto vocab = detail::load_clip_bpe_gz(path);
    const int64_t end_id = vocab->end_id;
    return ClipTokenizer(std::move(vocab), end_id, kDefaultMaxLength);
  }

  fs::path folder;
  if (fs::is_directory(path, ec)) {
    folder = path;
  } else if (ends_with(name, ".json") || ends_with(name, ".txt")) {
    folder = path.parent_path();  // vocab.json or merges.txt: read with its sibling
  } else {
    throw Error(path.string() + ": not a CLIP tokenizer (expected a folder with vocab.json and merges.txt, "
                                "bpe_simple_vocab_16e6.txt.gz, vocab.json or merges.txt)");
  }
  const fs::path vocab_json = ends_with(name, ".json") ? path : folder / "vocab.json";
  const fs::path merges_txt = ends_with(name, ".txt") ? path : folder / "merges.txt";
  require_file(vocab_json, "tokenizer " + path.string());
  require_file(merges_txt, "tokenizer " + path.string());
  auto vocab = detail::load_vocab_json_and_merges(vocab_json, merges_txt, path);

  const detail::TokenizerSettings settings = detail::read_tokenizer_settings(folder);
  int64_t pad_id = vocab->end_id;
  if (settings.pad_token) {
    auto it = vocab->encoder.find(*settings.pad_token);
    if (it == vocab->encoder.end()) {
      throw Error(settings.pad_token_file.string() + ": pad_token '" + *settings.pad_token +
                  "' is not in the vocabulary " + vocab_json.string());
    }
    pad_id = it->second;
  }
  return ClipTokenizer(std::move(vocab), pad_id, settings.max_length.value_or(kDefaultMaxLength));
}

void ClipTokenizer::append_bpe_ids(const std::string& piece, std::vector<int64_t>& ids) const {
  {
    std::lock_guard<std::mutex> lock(cache_->mutex);
    auto it = cache_->words.find(piece);
    if (it != cache_->words.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int64_t> word_ids;
  for (const std::string& symbol : bpe(*vocab_, piece)) {
    auto it = vocab_->encoder.find(symbol);
    if (it == vocab_->encoder.end()) {
      throw Error(vocab_->vocab_file.string() + ": BPE produced '" + symbol + "', which is not in the vocabulary");
    }
    word_ids.push_back(it->second);
  }
  ids.insert(ids.end(), word_ids.begin(), word_ids.end());
  std::lock_guard<std::mutex> lock(cache_->mutex);
  if (cache_->words.size() >= detail::ClipWordCache::kMaxWords) cache_->words.clear();
  cache_->words.emplace(piece, std::move(word_ids));
}

std::vector<int64_t> ClipTokenizer::tokenize(const std::string& text) const {
  const icu::UnicodeString cleaned = icu::UnicodeString::fromUTF8(clip_clean_text(text));
  UErrorCode status = U_ZERO_ERROR;
  std::unique_ptr<icu::RegexMatcher> matcher(pre_token_pattern().matcher(cleaned, status));
  if (U_FAILURE(status)) throw Error(std::string("ICU regex matcher failed: ") + u_errorName(status));
  std::vector<int64_t> ids;
  while (matcher->find()) {
    std::string piece;
    matcher->group(status).toUTF8String(piece);
    // CLIP's BPE cache is seeded with the two special tokens, so written out in a prompt they are the
    // special ids themselves.
    if (piece == detail::kStartOfText) {
      ids.push_back(vocab_->start_id);
    } else if (piece == detail::kEndOfText) {
      ids.push_back(vocab_->end_id);
    } else {
      std::string mapped;
      for (unsigned char byte : piece) mapped += vocab_->byte_encoder[byte];
      append_bpe_ids(mapped, ids);
    }
  }
  if (U_FAILURE(status)) throw Error(std::string("ICU regex match failed: ") + u_errorName(status));
  return ids;
}

std::vector<int64_t> ClipTokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids{vocab_->start_id};
  const std::vector<int64_t> tokens = tokenize(text);
  ids.insert(ids.end(), tokens.begin(), tokens.end());
  ids.push_back(vocab_->end_id);
  return ids;
}

std::vector<int64_t> ClipTokenizer::encode_padded(const std::string& text) const {
  const std::vector<int64_t> tokens = tokenize(text);
  const size_t kept = std::min(tokens.size(), static_cast<size_t>(max_length_ - 2));
  std::vector<int64_t> ids{vocab_->start_id};
  ids.insert(ids.end(), tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(kept));
  ids.push_back(vocab_->end_id);
  ids.resize(static_cast<size_t>(max_length_), pad_id_);
  return ids;
}

std::string ClipTokenizer::token_text(int64_t id) const {
  auto it = vocab_->decoder.find(id);
  if (it == vocab_->decoder.end()) {
    throw Error("token id " + std::to_string(id) + " is not in the vocabulary " + vocab_->vocab_file.string());
  }
  return it->second;
}

std::optional<int64_t> ClipTokenizer::token_id(const std::string& token_text) const {
  auto it = vocab_->encoder.find(token_text);
  if (it == vocab_->encoder.end()) return std::nullopt;
  return it->second;
}

std::string ClipTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string bytes;
  for (int64_t id : ids) {
    for (const std::string& c : utf8_characters(token_text(id))) {
      auto it = vocab_->byte_decoder.find(c);
      if (it == vocab_->byte_decoder.end()) {
        throw Error("token id " + std::to_string(id) + " holds a character outside the byte alphabet");
      }
      bytes.push_back(static_cast<char>(it->second));
    }
  }
  // bytes.decode("utf-8", errors="replace").replace("</w>", " ")
  std::string text = u32_to_utf8(utf8_to_u32(bytes));
  std::string out;
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, 4, "</w>") == 0) {
      out.push_back(' ');
      i += 4;
    } else {
      out.push_back(text[i++]);
    }
  }
  return out;
}

int64_t ClipTokenizer::start_id() const { return vocab_->start_id; }
int64_t ClipTokenizer::end_id() const { return vocab_->end_id; }
int64_t ClipTokenizer::vocab_size() const { return vocab_->max_id + 1; }
const fs::path& ClipTokenizer::source() const { return vocab_->source; }

void ClipTokenizer::set_pad_token(const std::string& token_text) {
  auto id = token_id(token_text);
  if (!id) throw Error("pad token '" + token_text + "' is not in the vocabulary " + vocab_->vocab_file.string());
  pad_id_ = *id;
}

void ClipTokenizer::set_pad_id(int64_t id) {
  if (vocab_->decoder.count(id) == 0) {
    throw Error("pad id " + std::to_string(id) + " is not in the vocabulary " + vocab_->vocab_file.string());
  }
  pad_id_ = id;
}

}  // namespace diffuse::text
