// Fuzzes the CLIP BPE tokenizer's files and its use (src/text/clip_tokenizer.cpp, clip_vocabulary.cpp
// and the text cleaning beneath): the input is split at NUL bytes into vocab.json, merges.txt, an
// optional tokenizer_config.json and an optional extra prompt; the files are written to a folder in
// memory (/dev/shm), read with ClipTokenizer::from_path, and a fixed prompt (plus the extra text, at
// most 256 bytes) is encoded, padded and decoded. A diffuse::Error is a refusal; any other exception,
// a sanitizer report or ids that break encode_padded's contract are a finding.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "text/clip_tokenizer.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const char* const kFiles[] = {"vocab.json", "merges.txt", "tokenizer_config.json"};
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0 && parts.size() < 4) {
      parts.emplace_back();
    } else {
      parts.back().push_back(static_cast<char>(data[i]));
    }
  }
  const std::filesystem::path& folder = fuzz::scratch_dir();
  for (size_t i = 0; i < 3; ++i) {
    if (i < parts.size()) {
      fuzz::write_file(folder / kFiles[i], reinterpret_cast<const uint8_t*>(parts[i].data()), parts[i].size());
    } else {
      fuzz::remove_file(folder / kFiles[i]);
    }
  }
  std::string prompt = "a photo of an astronaut riding a horse, 8k! (masterpiece:1.2) <|endoftext|> it's";
  if (parts.size() > 3) prompt += " " + parts[3].substr(0, 256);

  try {
    diffuse::text::ClipTokenizer tokenizer = diffuse::text::ClipTokenizer::from_path(folder);
    const std::vector<int64_t> ids = tokenizer.encode(prompt);
    FUZZ_CHECK(ids.size() >= 2 && ids.front() == tokenizer.start_id() && ids.back() == tokenizer.end_id());
    const std::vector<int64_t> padded = tokenizer.encode_padded(prompt);
    FUZZ_CHECK(padded.size() == static_cast<size_t>(tokenizer.max_length()));
    (void)tokenizer.vocab_size();
    for (const int64_t id : ids) (void)tokenizer.token_text(id);
    (void)tokenizer.decode(ids);
    (void)tokenizer.token_id("!");
    tokenizer.set_pad_id(tokenizer.end_id());
    (void)tokenizer.encode_padded(prompt);
  } catch (const diffuse::Error&) {
    // a refusal
  }
  return 0;
}
