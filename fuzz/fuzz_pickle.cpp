// Fuzzes the restricted unpickler (src/io/pickle_reader.cpp) on raw bytes, as the legacy .ckpt reader
// feeds it: up to six pickles back to back into one Document. A diffuse::Error is a refusal; any
// other exception, a sanitizer report or a broken invariant of the Document is a finding.
#include <cstddef>
#include <cstdint>

#include "fuzz_support.h"
#include "io/pickle_reader.h"
#include "util/error.h"

namespace {

using namespace diffuse::io::pickle;

// What the checkpoint reader relies on: every reference inside the arena, dicts in pairs, tensor
// records that fit their storage.
void check_document(const Document& doc, Ref root) {
  FUZZ_CHECK(root < doc.values.size());
  for (size_t i = 0; i < doc.values.size(); ++i) {
    const Value& value = doc.values[i];
    for (const Ref item : value.items) FUZZ_CHECK(item < doc.values.size());
    if (value.kind == Kind::Dict) FUZZ_CHECK(value.items.size() % 2 == 0);
    if (value.kind == Kind::Storage) FUZZ_CHECK(value.detail < doc.storages.size());
    if (value.kind == Kind::Tensor) FUZZ_CHECK(value.detail < doc.tensors.size());
    (void)doc.describe(static_cast<Ref>(i));
  }
  for (const TensorRecord& tensor : doc.tensors) {
    FUZZ_CHECK(doc.at(tensor.storage).kind == Kind::Storage);
    FUZZ_CHECK(tensor.shape.size() == tensor.stride.size());
    const StorageRecord& storage = doc.storages.at(doc.at(tensor.storage).detail);
    FUZZ_CHECK(tensor.elements_needed >= 0 && tensor.elements_needed <= storage.numel);
  }
  (void)doc.get(root, "state_dict");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Document doc;
  size_t at = 0;
  for (int i = 0; i < 6 && at < size; ++i) {
    size_t consumed = 0;
    try {
      const Ref root = read_pickle(data + at, size - at, "fuzz: ", doc, &consumed);
      FUZZ_CHECK(consumed > 0 && consumed <= size - at);
      check_document(doc, root);
    } catch (const diffuse::Error&) {
      break;  // a refusal
    }
    at += consumed;
  }
  return 0;
}
