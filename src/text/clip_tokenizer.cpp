#include "text/clip_tokenizer.h"

#include <algorithm>
#include <climits>
#include <map>
#include <mutex>
#include <unordered_map>

#include <unicode/regex.h>
#include <unicode/unistr.h>

#include "text/added_tokens.h"
#include "text/clip_text_clean.h"
#include "text/clip_vocabulary.h"
#include "text/unicode_text.h"
#include "util/error.h"
#include "util/strings.h"

namespace diffuse::text {

namespace detail {
// BPE results per pre-token. Shared by copies of a tokenizer (the result depends only on the vocabulary),
// bounded so a long-running server cannot grow it without limit.
struct ClipWordCache {
  static constexpr size_t kMaxWords = 100000;
  std::mutex mutex;
  std::unordered_map<std::string, std::vector<int64_t>> words;
};

// A tokenizer's added tokens (transformers' _added_tokens_decoder / _added_tokens_encoder and
// tokens_trie), immutable; a tokenizer with another pad token gets a rebuilt one.
struct ClipAddedTokens {
  using AddedToken = ClipTokenizer::AddedToken;
  std::vector<AddedToken> tokens;
  std::unordered_map<std::string, size_t> by_content;  // into tokens
  std::unordered_map<std::u32string, size_t> by_text;   // the same, keyed by code points
  std::unordered_map<int64_t, size_t> by_id;
  AddedTokenTrie trie;
  bool split_special_tokens = false;
  // What it was built from: the tokens the files list with ids, and the special-token roles
  // (role name, token without an id) in transformers' order.
  std::vector<AddedToken> listed;
  std::vector<std::pair<std::string, AddedToken>> roles;
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

void require_file(const fs::path& file, const std::string& context) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) throw Error(context + ": missing " + file.string());
}

using AddedToken = ClipTokenizer::AddedToken;
using Roles = std::vector<std::pair<std::string, AddedToken>>;

AddedToken special_token(const std::string& content) {
  AddedToken token;
  token.content = content;
  token.normalized = false;
  token.special = true;
  return token;
}

// As PreTrainedTokenizer.__init__ sets them up: the listed tokens by id (a later one of the same id
// replacing an earlier one), content -> id from those, then each special token whose content is not
// among them, with its vocabulary id. (transformers gives a special token outside the vocabulary a new
// id past it; no CLIP text encoder has a row for one, so such a token is left unmatched here.)
std::shared_ptr<const detail::ClipAddedTokens> build_added_tokens(const detail::ClipVocabulary& vocab,
                                                                 std::vector<AddedToken> listed, Roles roles,
                                                                 bool split_special_tokens) {
  auto added = std::make_shared<detail::ClipAddedTokens>();
  auto put = [&](const AddedToken& token) {
    auto at = added->by_id.find(*token.id);
    if (at != added->by_id.end()) {
      added->tokens[at->second] = token;
    } else {
      added->by_id.emplace(*token.id, added->tokens.size());
      added->tokens.push_back(token);
    }
  };
  for (const AddedToken& token : listed) {
    if (!token.content.empty() && token.id) put(token);
  }
  for (const auto& [role, token] : roles) {
    if (token.content.empty()) continue;
    const bool known = std::any_of(added->tokens.begin(), added->tokens.end(),
                                   [&content = token.content](const AddedToken& t) { return t.content == content; });
    if (known) continue;
    auto in_vocab = vocab.encoder.find(token.content);
    if (in_vocab == vocab.encoder.end()) continue;
    AddedToken with_id = token;
    with_id.id = in_vocab->second;
    put(with_id);
  }
  for (size_t i = 0; i < added->tokens.size(); ++i) {
    const std::u32string text = utf8_to_u32(added->tokens[i].content);
    added->by_content[added->tokens[i].content] = i;
    added->by_text[text] = i;
    added->trie.add(text);
  }
  added->split_special_tokens = split_special_tokens;
  added->listed = std::move(listed);
  added->roles = std::move(roles);
  return added;
}

// CLIPTokenizer's defaults for the roles a tokenizer's files leave unset.
Roles clip_roles(const std::vector<std::pair<std::string, AddedToken>>& named) {
  const std::pair<const char*, const char*> order[] = {
      {"bos_token", detail::kStartOfText}, {"eos_token", detail::kEndOfText}, {"unk_token", detail::kEndOfText},
      {"sep_token", nullptr},              {"pad_token", detail::kEndOfText}, {"cls_token", nullptr},
      {"mask_token", nullptr}};
  Roles roles;
  for (const auto& [role, fallback] : order) {
    auto it = std::find_if(named.begin(), named.end(), [name = role](const auto& n) { return n.first == name; });
    if (it != named.end()) {
      roles.emplace_back(role, it->second);
    } else if (fallback != nullptr) {
      roles.emplace_back(role, special_token(fallback));
    }
  }
  for (const auto& [role, spec] : named) {
    if (role == "additional_special_tokens") roles.emplace_back(role, spec);
  }
  return roles;
}

// Python's str.lstrip() / str.rstrip().
std::u32string lstrip(const std::u32string& text) {
  size_t i = 0;
  while (i < text.size() && is_python_space(text[i])) ++i;
  return text.substr(i);
}
std::u32string rstrip(const std::u32string& text) {
  size_t n = text.size();
  while (n > 0 && is_python_space(text[n - 1])) --n;
  return text.substr(0, n);
}

}  // namespace

ClipTokenizer::ClipTokenizer(std::shared_ptr<const detail::ClipVocabulary> vocab,
                             std::shared_ptr<const detail::ClipAddedTokens> added, int64_t pad_id, int max_length)
    : vocab_(std::move(vocab)), added_(std::move(added)), cache_(std::make_shared<detail::ClipWordCache>()),
      pad_id_(pad_id), max_length_(max_length) {}

ClipTokenizer ClipTokenizer::from_path(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error("tokenizer path does not exist: " + path.string());
  const std::string name = path.filename().string();
  if (!fs::is_directory(path, ec) && ends_with(name, ".gz")) {
    auto vocab = detail::load_clip_bpe_gz(path);
    const int64_t end_id = vocab->end_id;
    auto added = build_added_tokens(*vocab, {}, clip_roles({}), false);
    return ClipTokenizer(std::move(vocab), std::move(added), end_id, kDefaultMaxLength);
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
  auto added = build_added_tokens(*vocab, settings.added_tokens, clip_roles(settings.special_tokens),
                                  settings.split_special_tokens);
  int64_t pad_id = vocab->end_id;
  if (settings.pad_token) {
    // convert_tokens_to_ids: an added token's id first, else the vocabulary's.
    auto listed_pad = added->by_content.find(*settings.pad_token);
    auto it = vocab->encoder.find(*settings.pad_token);
    if (listed_pad != added->by_content.end()) {
      pad_id = added->tokens[listed_pad->second].id.value();
    } else if (it != vocab->encoder.end()) {
      pad_id = it->second;
    } else {
      throw Error(settings.pad_token_file.string() + ": pad_token '" + *settings.pad_token +
                  "' is not in the vocabulary " + vocab_json.string());
    }
  }
  return ClipTokenizer(std::move(vocab), std::move(added), pad_id, settings.max_length.value_or(kDefaultMaxLength));
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
  // The ids depend on the added tokens only where one has a vocabulary entry's content but another
  // id; such tokens come from the files alone, so they are the same for every copy sharing the cache.
  std::vector<int64_t> word_ids;
  for (const std::string& symbol : bpe(*vocab_, piece)) {
    auto listed = added_->by_content.find(symbol);
    if (listed != added_->by_content.end()) {
      word_ids.push_back(added_->tokens[listed->second].id.value());
      continue;
    }
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

void ClipTokenizer::append_text_ids(const std::string& text, std::vector<int64_t>& ids) const {
  const icu::UnicodeString cleaned = icu::UnicodeString::fromUTF8(clip_clean_text(text));
  UErrorCode status = U_ZERO_ERROR;
  std::unique_ptr<icu::RegexMatcher> matcher(pre_token_pattern().matcher(cleaned, status));
  if (U_FAILURE(status)) throw Error(std::string("ICU regex matcher failed: ") + u_errorName(status));
  while (matcher->find()) {
    std::string piece;
    matcher->group(status).toUTF8String(piece);
    // CLIP's BPE cache is seeded with the two special tokens, so written out in a prompt they are the
    // special ids themselves (here when they were not matched whole before cleaning: "<|EndOfText|>").
    if (piece == detail::kStartOfText || piece == detail::kEndOfText) {
      auto listed = added_->by_content.find(piece);
      if (listed != added_->by_content.end()) {
        ids.push_back(added_->tokens[listed->second].id.value());
      } else {
        ids.push_back(piece == detail::kStartOfText ? vocab_->start_id : vocab_->end_id);
      }
    } else {
      std::string mapped;
      for (unsigned char byte : piece) mapped += vocab_->byte_encoder[byte];
      append_bpe_ids(mapped, ids);
    }
  }
  if (U_FAILURE(status)) throw Error(std::string("ICU regex match failed: ") + u_errorName(status));
}

// PreTrainedTokenizer.tokenize: split on the added tokens, let each one's rstrip / lstrip / single_word
// act on its neighbours (left and right as they were before, as there), then the ids of every
// non-empty piece: an added token's own, or CLIPTokenizer._tokenize's for the text between.
std::vector<int64_t> ClipTokenizer::tokenize(const std::string& text) const {
  std::vector<int64_t> ids;
  if (added_->split_special_tokens || added_->tokens.empty()) {
    append_text_ids(text, ids);
    return ids;
  }
  std::vector<std::u32string> pieces = added_->trie.split(utf8_to_u32(text));
  const size_t n = pieces.size();
  for (size_t i = 0; i < n; ++i) {
    const std::u32string piece = pieces[i];
    auto found = added_->by_text.find(piece);
    if (found == added_->by_text.end()) continue;
    const AddedToken& token = added_->tokens[found->second];
    const std::u32string left = i > 0 ? pieces[i - 1] : std::u32string();
    const std::u32string right = i + 1 < n ? pieces[i + 1] : std::u32string();
    if (token.rstrip && !right.empty()) pieces[i + 1] = lstrip(right);
    if (token.lstrip && !left.empty()) pieces[i - 1] = rstrip(left);
    if (token.single_word && !left.empty() && left.back() != U' ') {
      pieces[i - 1] += piece;
      pieces[i].clear();
    } else if (token.single_word && !right.empty() && right.front() != U' ') {
      pieces[i + 1] = piece + pieces[i + 1];
      pieces[i].clear();
    }
  }
  for (const std::u32string& piece : pieces) {
    if (piece.empty()) continue;
    auto found = added_->by_text.find(piece);
    if (found != added_->by_text.end()) {
      ids.push_back(added_->tokens[found->second].id.value());
    } else {
      append_text_ids(u32_to_utf8(piece), ids);
    }
  }
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
    auto listed = added_->by_id.find(id);
    if (listed != added_->by_id.end()) return added_->tokens[listed->second].content;
    throw Error("token id " + std::to_string(id) + " is not in the vocabulary " + vocab_->vocab_file.string());
  }
  return it->second;
}

std::optional<int64_t> ClipTokenizer::token_id(const std::string& token_text) const {
  auto listed = added_->by_content.find(token_text);
  if (listed != added_->by_content.end()) return added_->tokens[listed->second].id;
  auto it = vocab_->encoder.find(token_text);
  if (it == vocab_->encoder.end()) return std::nullopt;
  return it->second;
}

std::string ClipTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string bytes;
  for (int64_t id : ids) {
    if (vocab_->decoder.count(id) == 0 && added_->by_id.count(id) != 0) {
      bytes += added_->tokens[added_->by_id.at(id)].content;
      continue;
    }
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
int64_t ClipTokenizer::vocab_size() const {
  int64_t max_id = vocab_->max_id;
  for (const AddedToken& token : added_->tokens) max_id = std::max(max_id, *token.id);
  return max_id + 1;
}
const std::vector<ClipTokenizer::AddedToken>& ClipTokenizer::added_tokens() const { return added_->tokens; }
const fs::path& ClipTokenizer::source() const { return vocab_->source; }

void ClipTokenizer::use_pad_token(const std::string& token_text, int64_t id) {
  Roles roles = added_->roles;
  auto pad = std::find_if(roles.begin(), roles.end(), [](const auto& role) { return role.first == "pad_token"; });
  if (pad != roles.end()) {
    pad->second = special_token(token_text);
  } else {
    roles.emplace_back("pad_token", special_token(token_text));
  }
  added_ = build_added_tokens(*vocab_, added_->listed, std::move(roles), added_->split_special_tokens);
  pad_id_ = id;
}

void ClipTokenizer::set_pad_token(const std::string& token_text) {
  auto id = token_id(token_text);
  if (!id) throw Error("pad token '" + token_text + "' is not in the vocabulary " + vocab_->vocab_file.string());
  use_pad_token(token_text, *id);
}

void ClipTokenizer::set_pad_id(int64_t id) {
  if (vocab_->decoder.count(id) == 0 && added_->by_id.count(id) == 0) {
    throw Error("pad id " + std::to_string(id) + " is not in the vocabulary " + vocab_->vocab_file.string());
  }
  use_pad_token(token_text(id), id);
}

}  // namespace diffuse::text
