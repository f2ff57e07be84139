// Fuzzes torch.save's zip container reader (src/io/zip_archive.cpp, read_zip_directory) and, for an
// accepted archive, the restricted unpickler over every record named *data.pkl, as the checkpoint
// reader does. A diffuse::Error is a refusal; any other exception, a sanitizer report or a record
// outside the input is a finding.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "fuzz_support.h"
#include "io/pickle_reader.h"
#include "io/zip_archive.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)diffuse::io::looks_like_zip(data, size);
  std::map<std::string, diffuse::io::ZipRecord> records;
  try {
    records = diffuse::io::read_zip_directory(data, size, "fuzz.ckpt: ");
  } catch (const diffuse::Error&) {
    return 0;  // a refusal
  }
  const std::string suffix = "data.pkl";
  for (const auto& [name, record] : records) {
    FUZZ_CHECK(record.offset <= size && record.size <= size - record.offset);
    if (name.size() < suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    diffuse::io::pickle::Document doc;
    try {
      const auto root = diffuse::io::pickle::read_pickle(data + record.offset, record.size, "fuzz.ckpt: data.pkl: ", doc);
      FUZZ_CHECK(root < doc.values.size());
    } catch (const diffuse::Error&) {
      // a refusal
    }
  }
  return 0;
}
