#include "io/pickle_reader.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include "util/error.h"
#include "util/utf8.h"

namespace diffuse::io::pickle {

namespace {

// What a checkpoint may name, after Python 2 names are mapped as protocol <= 2 pickles need
// (__builtin__ -> builtins). An allow-list: everything else is refused by name, before any use.
enum class Allowed { OrderedDict, RebuildTensor, RebuildParameter, StorageType, MakeSet, MakeFrozenSet, Encode };

struct AllowedGlobal {
  const char* module;
  const char* name;
  Allowed what;
};

constexpr AllowedGlobal kAllowed[] = {
    {"collections", "OrderedDict", Allowed::OrderedDict},
    {"torch._utils", "_rebuild_tensor_v2", Allowed::RebuildTensor},
    {"torch._utils", "_rebuild_parameter", Allowed::RebuildParameter},
    {"torch", "HalfStorage", Allowed::StorageType},   {"torch", "FloatStorage", Allowed::StorageType},
    {"torch", "DoubleStorage", Allowed::StorageType}, {"torch", "BFloat16Storage", Allowed::StorageType},
    {"torch", "LongStorage", Allowed::StorageType},   {"torch", "IntStorage", Allowed::StorageType},
    {"torch", "ShortStorage", Allowed::StorageType},  {"torch", "CharStorage", Allowed::StorageType},
    {"torch", "ByteStorage", Allowed::StorageType},   {"torch", "BoolStorage", Allowed::StorageType},
    {"builtins", "set", Allowed::MakeSet},
    {"builtins", "frozenset", Allowed::MakeFrozenSet},
    {"_codecs", "encode", Allowed::Encode},
};

const char* opcode_name(uint8_t op) {
  switch (op) {
    case 0x82: return "EXT1";
    case 0x83: return "EXT2";
    case 0x84: return "EXT4";
    case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    default: return nullptr;
  }
}

class Reader {
 public:
  Reader(const uint8_t* bytes, size_t size, const std::string& where, Document& doc, const Limits& limits)
      : bytes_(bytes), size_(size), where_(where), doc_(doc), limits_(limits) {}

  Ref run(size_t* consumed) {
    while (true) {
      const size_t at = pos_;
      const uint8_t op = byte();
      if (op == '.') {
        if (consumed) *consumed = pos_;
        if (stack_.empty()) fail(at, "STOP with an empty stack");
        return stack_.back();
      }
      step(op, at);
    }
  }

 private:
  [[noreturn]] void fail(size_t at, const std::string& why) const {
    throw Error(where_ + "pickle byte " + std::to_string(at) + ": " + why);
  }

  // --- input ---
  void need(size_t n) const {
    if (n > size_ - pos_) throw Error(where_ + "truncated pickle: ends at byte " + std::to_string(size_) +
                                      " inside an opcode (wants " + std::to_string(n) + " more bytes)");
  }
  uint8_t byte() {
    if (pos_ >= size_) throw Error(where_ + "truncated pickle: ends at byte " + std::to_string(size_) + " before STOP");
    return bytes_[pos_++];
  }
  uint64_t little(size_t n) {
    need(n);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(bytes_[pos_ + i]) << (8 * i);
    pos_ += n;
    return v;
  }
  std::string raw(uint64_t n, size_t at) {
    if (n > size_ - pos_) {
      fail(at, "a string of " + std::to_string(n) + " bytes runs past the end (" + std::to_string(size_ - pos_) +
                   " bytes left)");
    }
    std::string s(reinterpret_cast<const char*>(bytes_ + pos_), static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }
  std::string line(size_t at) {
    const void* end = std::memchr(bytes_ + pos_, '\n', size_ - pos_);
    if (end == nullptr) fail(at, "a text argument without its newline");
    const size_t n = static_cast<const uint8_t*>(end) - (bytes_ + pos_);
    std::string s(reinterpret_cast<const char*>(bytes_ + pos_), n);
    pos_ += n + 1;
    return s;
  }

  // --- values ---
  Ref make(Value value) {
    doc_.values.push_back(std::move(value));
    return static_cast<Ref>(doc_.values.size() - 1);
  }
  Ref make_int(int64_t v) {
    Value value;
    value.kind = Kind::Int;
    value.integer = v;
    return make(std::move(value));
  }
  Ref make_text(Kind kind, std::string text, size_t at) {
    if (kind == Kind::String && !is_valid_utf8(text)) fail(at, "a string that is not valid UTF-8");
    Value value;
    value.kind = kind;
    value.text = std::move(text);
    return make(std::move(value));
  }
  Ref make_container(Kind kind, const std::vector<Ref>& items, size_t at) {
    Value value;
    value.kind = kind;
    value.items = items;
    for (const Ref item : items) value.depth = std::max(value.depth, doc_.values[item].depth + 1);
    check_depth(value.depth, at);
    return make(std::move(value));
  }
  void check_depth(int depth, size_t at) const {
    if (depth > limits_.max_depth) fail(at, "values nested deeper than " + std::to_string(limits_.max_depth) + " levels");
  }
  void add_items(Ref container, const std::vector<Ref>& items, size_t at) {
    Value& target = doc_.values[container];
    for (const Ref item : items) {
      if (item == container) fail(at, "a container put inside itself");
      target.depth = std::max(target.depth, doc_.values[item].depth + 1);
    }
    check_depth(target.depth, at);
    target.items.insert(target.items.end(), items.begin(), items.end());
  }
  // Two's complement little-endian bytes (LONG1/LONG4): an Int when it fits, else a BigInt.
  Ref make_long(const std::string& data) {
    if (data.size() <= 8) {
      uint64_t v = 0;
      for (size_t i = 0; i < data.size(); ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(data[i])) << (8 * i);
      if (!data.empty() && data.size() < 8 && (static_cast<uint8_t>(data.back()) & 0x80)) {
        v |= ~uint64_t{0} << (8 * data.size());  // sign-extend
      }
      return make_int(static_cast<int64_t>(v));
    }
    Value value;
    value.kind = Kind::BigInt;
    value.text = data;
    return make(std::move(value));
  }

  // --- stack ---
  void push(Ref ref, size_t at) {
    if (stack_.size() >= limits_.max_stack) fail(at, "more than " + std::to_string(limits_.max_stack) + " values on the stack");
    stack_.push_back(ref);
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  Ref pop(size_t at) {
    if (stack_.size() <= floor()) fail(at, "stack underflow");
    const Ref ref = stack_.back();
    stack_.pop_back();
    return ref;
  }
  Ref& top(size_t at) {
    if (stack_.size() <= floor()) fail(at, "stack underflow");
    return stack_.back();
  }
  std::vector<Ref> pop_mark(size_t at) {
    if (marks_.empty()) fail(at, "no MARK to pop to");
    const size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<Ref> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return items;
  }
  Value& value(Ref ref) { return doc_.values[ref]; }
  const Value& value(Ref ref) const { return doc_.values[ref]; }

  // --- memo ---
  // The decimal key of protocol 0's GET / PUT.
  uint64_t memo_key_line(const char* opcode, size_t at) {
    const std::string text = line(at);
    char* end = nullptr;
    const unsigned long long key = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0') fail(at, std::string(opcode) + " '" + text + "' is not a memo key");
    return key;
  }
  void put(uint64_t key, size_t at) {
    if (memo_.size() >= (size_t{1} << 24)) fail(at, "more than 16M memo entries");
    memo_[key] = top(at);
  }
  void get(uint64_t key, size_t at) {
    const auto found = memo_.find(key);
    if (found == memo_.end()) fail(at, "memo key " + std::to_string(key) + " is missing");
    push(found->second, at);
  }

  // --- globals ---
  Ref global(std::string module, std::string name, size_t at) {
    const std::string written = module + "." + name;
    if (protocol_ < 3) {
      if (module == "__builtin__") module = "builtins";
      else if (module == "copy_reg") module = "copyreg";
    }
    for (const auto& allowed : kAllowed) {
      if (module == allowed.module && name == allowed.name) {
        Value v;
        v.kind = Kind::Global;
        v.text = module + "." + name;
        v.integer = static_cast<int64_t>(allowed.what);
        return make(std::move(v));
      }
    }
    const std::string mapped = module + "." + name;
    fail(at, "forbidden global " + written + (mapped == written ? "" : " (" + mapped + ")") +
                 ": checkpoints are read without running code, and only tensors, storages, OrderedDict, set and "
                 "bytes may be named");
  }
  Allowed allowed_of(Ref callable, size_t at) const {
    const Value& v = value(callable);
    if (v.kind != Kind::Global) fail(at, "calling " + doc_.describe(callable) + ", which is not a global");
    return static_cast<Allowed>(v.integer);
  }

  int64_t int_arg(Ref ref, const char* what, size_t at) const {
    const Value& v = value(ref);
    if (v.kind == Kind::BigInt) fail(at, std::string(what) + ": integer out of range (" + std::to_string(v.text.size()) + "-byte LONG)");
    if (v.kind != Kind::Int && v.kind != Kind::Bool) fail(at, std::string(what) + " is " + doc_.describe(ref) + ", not an integer");
    return v.integer;
  }
  std::vector<int64_t> ints_arg(Ref ref, const char* what, size_t at) const {
    const Value& v = value(ref);
    if (v.kind != Kind::Tuple && v.kind != Kind::List) fail(at, std::string(what) + " is " + doc_.describe(ref) + ", not a tuple");
    std::vector<int64_t> out;
    for (const Ref item : v.items) out.push_back(int_arg(item, what, at));
    return out;
  }

  Ref rebuild_tensor(const std::vector<Ref>& args, size_t at) {
    if (args.size() < 4) fail(at, "_rebuild_tensor_v2 with " + std::to_string(args.size()) + " arguments (wants at least 4)");
    const Ref storage = args[0];
    if (value(storage).kind != Kind::Storage) fail(at, "_rebuild_tensor_v2 of " + doc_.describe(storage) + ", not a storage");
    TensorRecord record;
    record.storage = storage;
    record.storage_offset = int_arg(args[1], "storage offset", at);
    record.shape = ints_arg(args[2], "shape", at);
    record.stride = ints_arg(args[3], "stride", at);
    if (record.storage_offset < 0) fail(at, "negative storage offset " + std::to_string(record.storage_offset));
    if (record.shape.size() != record.stride.size()) {
      fail(at, "stride has " + std::to_string(record.stride.size()) + " dimensions but the shape " +
                   std::to_string(record.shape.size()));
    }
    __int128 last = 0;  // the highest element index the view reaches
    bool empty = false;
    __int128 numel = 1;
    for (size_t i = 0; i < record.shape.size(); ++i) {
      if (record.shape[i] < 0) fail(at, "negative dimension " + std::to_string(record.shape[i]) + " in the shape");
      if (record.stride[i] < 0) fail(at, "negative stride " + std::to_string(record.stride[i]));
      if (record.shape[i] == 0) empty = true;
      numel *= record.shape[i];
      if (numel > (__int128{1} << 62)) fail(at, "the shape's element count overflows");
      last += static_cast<__int128>(record.shape[i] == 0 ? 0 : record.shape[i] - 1) * record.stride[i];
      if (last > (__int128{1} << 62)) fail(at, "the strided extent overflows");
    }
    const __int128 needed = empty ? 0 : record.storage_offset + last + 1;
    const auto& storage_record = doc_.storages[value(storage).detail];
    if (needed > storage_record.numel) {
      fail(at, "tensor of shape " + ints_text(record.shape) + ", stride " + ints_text(record.stride) + " at offset " +
                   std::to_string(record.storage_offset) + " reaches element " + std::to_string(static_cast<int64_t>(needed - 1)) +
                   " of a storage of " + std::to_string(storage_record.numel) + " elements");
    }
    record.elements_needed = static_cast<int64_t>(needed);
    // args[4] requires_grad, args[5] backward_hooks (an empty OrderedDict): values already read, unused.
    Value v;
    v.kind = Kind::Tensor;
    v.detail = doc_.tensors.size();
    doc_.tensors.push_back(std::move(record));
    return make(std::move(v));
  }

  static std::string ints_text(const std::vector<int64_t>& values) {
    std::string s = "[";
    for (size_t i = 0; i < values.size(); ++i) s += (i ? ", " : "") + std::to_string(values[i]);
    return s + "]";
  }

  Ref call(Ref callable, Ref args_ref, size_t at) {
    const Allowed what = allowed_of(callable, at);
    const Value& args_value = value(args_ref);
    if (args_value.kind != Kind::Tuple) fail(at, "call arguments are " + doc_.describe(args_ref) + ", not a tuple");
    const std::vector<Ref> args = args_value.items;
    switch (what) {
      case Allowed::OrderedDict: {
        std::vector<Ref> items;
        if (!args.empty()) {  // OrderedDict([(key, value), ...])
          const Value& pairs = value(args[0]);
          if (pairs.kind != Kind::List && pairs.kind != Kind::Tuple) fail(at, "OrderedDict of " + doc_.describe(args[0]));
          for (const Ref pair : pairs.items) {
            const Value& p = value(pair);
            if ((p.kind != Kind::Tuple && p.kind != Kind::List) || p.items.size() != 2) fail(at, "OrderedDict item is not a pair");
            items.push_back(p.items[0]);
            items.push_back(p.items[1]);
          }
        }
        return make_container(Kind::Dict, items, at);
      }
      case Allowed::RebuildTensor: return rebuild_tensor(args, at);
      case Allowed::RebuildParameter: {
        if (args.empty() || value(args[0]).kind != Kind::Tensor) fail(at, "_rebuild_parameter without a tensor");
        return args[0];
      }
      case Allowed::MakeSet:
      case Allowed::MakeFrozenSet: {
        std::vector<Ref> items;
        if (!args.empty()) {
          const Value& from = value(args[0]);
          if (from.kind != Kind::List && from.kind != Kind::Tuple && from.kind != Kind::Set) fail(at, "set of " + doc_.describe(args[0]));
          items = from.items;
        }
        return make_container(Kind::Set, items, at);
      }
      case Allowed::Encode: {
        // bytes pickled by protocol 2: _codecs.encode(text, 'latin1')
        if (args.size() != 2 || value(args[0]).kind != Kind::String || value(args[1]).kind != Kind::String) {
          fail(at, "_codecs.encode wants (str, encoding)");
        }
        const std::string encoding = value(args[1]).text;
        if (encoding != "latin1" && encoding != "latin-1") fail(at, "_codecs.encode to " + encoding + " (only latin1)");
        std::string out;
        const std::string& in = value(args[0]).text;
        for (size_t i = 0; i < in.size();) {  // UTF-8 code points below 256 -> one byte each
          const auto c = static_cast<unsigned char>(in[i]);
          if (c < 0x80) { out += static_cast<char>(c); ++i; }
          else if ((c & 0xE0) == 0xC0 && i + 1 < in.size()) {
            const uint32_t code = ((c & 0x1F) << 6) | (static_cast<unsigned char>(in[i + 1]) & 0x3F);
            if (code > 0xFF) fail(at, "_codecs.encode: a character beyond latin1");
            out += static_cast<char>(code);
            i += 2;
          } else {
            fail(at, "_codecs.encode: a character beyond latin1");
          }
        }
        return make_text(Kind::Bytes, std::move(out), at);
      }
      case Allowed::StorageType: fail(at, "constructing a storage " + value(callable).text + " directly");
    }
    fail(at, "unknown call");
  }

  Ref persistent(Ref id, size_t at) {
    const Value& tuple = value(id);
    if (tuple.kind != Kind::Tuple || tuple.items.empty()) fail(at, "persistent id is " + doc_.describe(id) + ", not a tuple");
    const Value& tag = value(tuple.items[0]);
    if (tag.kind != Kind::String || tag.text != "storage") {
      fail(at, "persistent id of kind " + (tag.kind == Kind::String ? "'" + tag.text + "'" : doc_.describe(tuple.items[0])) +
                   " (only 'storage')");
    }
    if (tuple.items.size() < 5) fail(at, "storage persistent id with " + std::to_string(tuple.items.size()) + " fields (wants 5)");
    const Value& type = value(tuple.items[1]);
    if (type.kind != Kind::Global || static_cast<Allowed>(type.integer) != Allowed::StorageType) {
      fail(at, "storage type is " + doc_.describe(tuple.items[1]) + ", not a torch storage type");
    }
    if (value(tuple.items[2]).kind != Kind::String) fail(at, "storage key is " + doc_.describe(tuple.items[2]));
    if (value(tuple.items[3]).kind != Kind::String) fail(at, "storage location is " + doc_.describe(tuple.items[3]));
    // Copies: making the storage value below may move the arena.
    const std::string key = value(tuple.items[2]).text;
    const std::string location = value(tuple.items[3]).text;
    const std::string type_name = type.text.substr(6);  // after "torch."
    const int64_t numel = int_arg(tuple.items[4], "storage size", at);
    if (numel < 0) fail(at, "storage of " + std::to_string(numel) + " elements");
    if (tuple.items.size() >= 6 && value(tuple.items[5]).kind != Kind::None) {
      fail(at, "storage views (legacy view_metadata) are not supported");
    }
    // One value per storage key, so tensors sharing a storage share it.
    const auto known = storages_.find(key);
    if (known != storages_.end()) {
      const auto& record = doc_.storages[value(known->second).detail];
      if (record.numel != numel || record.type != type_name) fail(at, "storage '" + key + "' declared twice, differently");
      return known->second;
    }
    StorageRecord record;
    record.type = type_name;
    record.key = key;
    record.location = location;
    record.numel = numel;
    Value v;
    v.kind = Kind::Storage;
    v.detail = doc_.storages.size();
    doc_.storages.push_back(std::move(record));
    const Ref ref = make(std::move(v));
    storages_.emplace(key, ref);
    return ref;
  }

  void step(uint8_t op, size_t at);
  bool stack_or_number_step(uint8_t op, size_t at);
  bool text_step(uint8_t op, size_t at);
  bool container_step(uint8_t op, size_t at);
  bool memo_or_object_step(uint8_t op, size_t at);

  const uint8_t* bytes_;
  size_t size_;
  size_t pos_ = 0;
  std::string where_;
  Document& doc_;
  Limits limits_;
  int protocol_ = 0;
  std::vector<Ref> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Ref> memo_;
  std::unordered_map<std::string, Ref> storages_;
};

// The stack itself, and numbers. False: not one of these opcodes.
bool Reader::stack_or_number_step(uint8_t op, size_t at) {
  switch (op) {
    case 0x80: {  // PROTO
      protocol_ = byte();
      if (protocol_ > 5) fail(at, "unsupported pickle protocol " + std::to_string(protocol_));
      return true;
    }
    case 0x95: little(8); return true;  // FRAME: a length hint only
    case '(':
      if (static_cast<int>(marks_.size()) >= limits_.max_depth) fail(at, "more than " + std::to_string(limits_.max_depth) + " open MARKs");
      marks_.push_back(stack_.size());
      return true;
    case '0': pop(at); return true;
    case '1': pop_mark(at); return true;
    case '2': { const Ref r = top(at); push(r, at); return true; }
    case 'N': { Value v; push(make(std::move(v)), at); return true; }
    case 0x88: case 0x89: {
      Value v;
      v.kind = Kind::Bool;
      v.integer = op == 0x88;
      push(make(std::move(v)), at);
      return true;
    }
    case 'I': {  // INT as text; "00"/"01" are protocol 0's booleans
      const std::string text = line(at);
      if (text == "00" || text == "01") {
        Value v;
        v.kind = Kind::Bool;
        v.integer = text == "01";
        push(make(std::move(v)), at);
        return true;
      }
      char* end = nullptr;
      errno = 0;
      const long long v = std::strtoll(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || errno == ERANGE) fail(at, "INT '" + text + "' is not a 64-bit integer");
      push(make_int(v), at);
      return true;
    }
    case 'L': {
      std::string text = line(at);
      if (!text.empty() && text.back() == 'L') text.pop_back();
      char* end = nullptr;
      errno = 0;
      const long long v = std::strtoll(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || errno == ERANGE) fail(at, "LONG '" + text + "': integer out of range");
      push(make_int(v), at);
      return true;
    }
    case 'J': push(make_int(static_cast<int32_t>(little(4))), at); return true;
    case 'K': push(make_int(static_cast<int64_t>(little(1))), at); return true;
    case 'M': push(make_int(static_cast<int64_t>(little(2))), at); return true;
    case 0x8a: { const uint64_t n = little(1); push(make_long(raw(n, at)), at); return true; }
    case 0x8b: {
      const int64_t n = static_cast<int32_t>(little(4));
      if (n < 0) fail(at, "LONG4 with a negative length");
      if (n > 1024) fail(at, "integer out of range (" + std::to_string(n) + "-byte LONG4)");
      push(make_long(raw(static_cast<uint64_t>(n), at)), at);
      return true;
    }
    case 'F': {
      const std::string text = line(at);
      char* end = nullptr;
      const double v = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0') fail(at, "FLOAT '" + text + "' is not a number");
      Value value;
      value.kind = Kind::Float;
      value.real = v;
      push(make(std::move(value)), at);
      return true;
    }
    case 'G': {  // BINFLOAT: big-endian double
      need(8);
      uint64_t bits = 0;
      for (int i = 0; i < 8; ++i) bits = (bits << 8) | bytes_[pos_ + i];
      pos_ += 8;
      Value value;
      value.kind = Kind::Float;
      std::memcpy(&value.real, &bits, sizeof bits);
      push(make(std::move(value)), at);
      return true;
    }
    default: return false;
  }
}

// Strings and bytes. False: not one of these opcodes.
bool Reader::text_step(uint8_t op, size_t at) {
  switch (op) {
    case 'S': {  // STRING: a quoted Python 2 str; checkpoints only carry plain ones
      std::string text = line(at);
      if (text.size() < 2 || (text.front() != '\'' && text.front() != '"') || text.back() != text.front()) {
        fail(at, "STRING argument is not quoted");
      }
      text = text.substr(1, text.size() - 2);
      if (text.find('\\') != std::string::npos) fail(at, "STRING with escapes is not supported");
      push(make_text(Kind::String, std::move(text), at), at);
      return true;
    }
    case 'V': {
      std::string text = line(at);
      if (text.find('\\') != std::string::npos) fail(at, "UNICODE with escapes is not supported");
      push(make_text(Kind::String, std::move(text), at), at);
      return true;
    }
    case 'T': { const uint64_t n = static_cast<uint32_t>(little(4)); push(make_text(Kind::String, raw(n, at), at), at); return true; }
    case 'U': { const uint64_t n = little(1); push(make_text(Kind::String, raw(n, at), at), at); return true; }
    case 'X': { const uint64_t n = little(4); push(make_text(Kind::String, raw(n, at), at), at); return true; }
    case 0x8c: { const uint64_t n = little(1); push(make_text(Kind::String, raw(n, at), at), at); return true; }
    case 0x8d: { const uint64_t n = little(8); push(make_text(Kind::String, raw(n, at), at), at); return true; }
    case 'B': { const uint64_t n = little(4); push(make_text(Kind::Bytes, raw(n, at), at), at); return true; }
    case 'C': { const uint64_t n = little(1); push(make_text(Kind::Bytes, raw(n, at), at), at); return true; }
    case 0x8e: case 0x96: { const uint64_t n = little(8); push(make_text(Kind::Bytes, raw(n, at), at), at); return true; }
    default: return false;
  }
}

// Lists, tuples, dicts and sets, and filling them. False: not one of these opcodes.
bool Reader::container_step(uint8_t op, size_t at) {
  switch (op) {
    case ']': push(make_container(Kind::List, {}, at), at); return true;
    case ')': push(make_container(Kind::Tuple, {}, at), at); return true;
    case '}': push(make_container(Kind::Dict, {}, at), at); return true;
    case 0x8f: push(make_container(Kind::Set, {}, at), at); return true;
    case 'l': { const auto items = pop_mark(at); push(make_container(Kind::List, items, at), at); return true; }
    case 't': { const auto items = pop_mark(at); push(make_container(Kind::Tuple, items, at), at); return true; }
    case 0x91: { const auto items = pop_mark(at); push(make_container(Kind::Set, items, at), at); return true; }
    case 0x85: case 0x86: case 0x87: {
      const size_t n = static_cast<size_t>(op - 0x84);
      std::vector<Ref> items(n);
      for (size_t i = n; i-- > 0;) items[i] = pop(at);
      push(make_container(Kind::Tuple, items, at), at);
      return true;
    }
    case 'd': {
      const auto items = pop_mark(at);
      if (items.size() % 2) fail(at, "DICT with an odd number of items");
      push(make_container(Kind::Dict, items, at), at);
      return true;
    }
    case 'a': {
      const Ref item = pop(at);
      const Ref list = top(at);
      if (value(list).kind != Kind::List) fail(at, "APPEND to " + doc_.describe(list));
      add_items(list, {item}, at);
      return true;
    }
    case 'e': {
      const auto items = pop_mark(at);
      const Ref list = top(at);
      if (value(list).kind != Kind::List) fail(at, "APPENDS to " + doc_.describe(list));
      add_items(list, items, at);
      return true;
    }
    case 0x90: {
      const auto items = pop_mark(at);
      const Ref set = top(at);
      if (value(set).kind != Kind::Set) fail(at, "ADDITEMS to " + doc_.describe(set));
      add_items(set, items, at);
      return true;
    }
    case 's': {
      const Ref v = pop(at);
      const Ref k = pop(at);
      const Ref dict = top(at);
      if (value(dict).kind != Kind::Dict) fail(at, "SETITEM on " + doc_.describe(dict));
      add_items(dict, {k, v}, at);
      return true;
    }
    case 'u': {
      const auto items = pop_mark(at);
      const Ref dict = top(at);
      if (value(dict).kind != Kind::Dict) fail(at, "SETITEMS on " + doc_.describe(dict));
      if (items.size() % 2) fail(at, "SETITEMS with an odd number of items");
      add_items(dict, items, at);
      return true;
    }
    default: return false;
  }
}

// The memo, globals, calls (through the allow list) and persistent ids. False: not one of these opcodes.
bool Reader::memo_or_object_step(uint8_t op, size_t at) {
  switch (op) {
    case 'g': get(memo_key_line("GET", at), at); return true;
    case 'h': get(little(1), at); return true;
    case 'j': get(little(4), at); return true;
    case 'p': put(memo_key_line("PUT", at), at); return true;
    case 'q': put(little(1), at); return true;
    case 'r': put(little(4), at); return true;
    case 0x94: put(memo_.size(), at); return true;
    case 'c': {
      std::string module = line(at);
      std::string name = line(at);
      push(global(std::move(module), std::move(name), at), at);
      return true;
    }
    case 0x93: {  // STACK_GLOBAL: module and name from the stack (maybe from the memo): same check
      const Ref name = pop(at);
      const Ref module = pop(at);
      if (value(module).kind != Kind::String || value(name).kind != Kind::String) fail(at, "STACK_GLOBAL without two strings");
      push(global(value(module).text, value(name).text, at), at);
      return true;
    }
    case 'i': {  // INST module\nname\n: look up and call, with the MARKed arguments
      std::string module = line(at);
      std::string name = line(at);
      const Ref callable = global(std::move(module), std::move(name), at);
      const auto args = pop_mark(at);
      push(call(callable, make_container(Kind::Tuple, args, at), at), at);
      return true;
    }
    case 'o': {  // OBJ: class and arguments after MARK
      auto items = pop_mark(at);
      if (items.empty()) fail(at, "OBJ without a class");
      const Ref callable = items.front();
      items.erase(items.begin());
      push(call(callable, make_container(Kind::Tuple, items, at), at), at);
      return true;
    }
    case 'R': {
      const Ref args = pop(at);
      const Ref callable = pop(at);
      push(call(callable, args, at), at);
      return true;
    }
    case 0x81: {  // NEWOBJ cls args
      const Ref args = pop(at);
      const Ref callable = pop(at);
      push(call(callable, args, at), at);
      return true;
    }
    case 0x92: {  // NEWOBJ_EX cls args kwargs
      const Ref kwargs = pop(at);
      const Ref args = pop(at);
      const Ref callable = pop(at);
      if (value(kwargs).kind != Kind::Dict || !value(kwargs).items.empty()) fail(at, "NEWOBJ_EX with keyword arguments");
      push(call(callable, args, at), at);
      return true;
    }
    case 'b': {  // BUILD: the state of an OrderedDict (state_dict's _metadata) is dropped
      const Ref state = pop(at);
      const Ref target = top(at);
      (void)state;
      if (value(target).kind != Kind::Dict && value(target).kind != Kind::Tensor) {
        fail(at, "BUILD on " + doc_.describe(target));
      }
      return true;
    }
    case 'P': {
      const std::string id = line(at);
      fail(at, "text persistent id '" + id + "' (torch writes BINPERSID)");
    }
    case 'Q': { const Ref id = pop(at); push(persistent(id, at), at); return true; }
    default: return false;
  }
}

void Reader::step(uint8_t op, size_t at) {
  if (stack_or_number_step(op, at) || text_step(op, at) || container_step(op, at) || memo_or_object_step(op, at)) {
    return;
  }
  if (const char* name = opcode_name(op)) fail(at, std::string("unsupported opcode ") + name);
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02x", op);
  fail(at, std::string("unknown opcode ") + hex);
}

}  // namespace

std::optional<Ref> Document::get(Ref dict, const std::string& key) const {
  const Value& d = at(dict);
  if (d.kind != Kind::Dict) return std::nullopt;
  std::optional<Ref> found;
  for (size_t i = 0; i + 1 < d.items.size(); i += 2) {
    const Value& k = at(d.items[i]);
    if (k.kind == Kind::String && k.text == key) found = d.items[i + 1];  // the last one wins, as in Python
  }
  return found;
}

std::string Document::describe(Ref ref) const {
  const Value& v = at(ref);
  switch (v.kind) {
    case Kind::None: return "None";
    case Kind::Bool: return "a bool";
    case Kind::Int: return "the integer " + std::to_string(v.integer);
    case Kind::BigInt: return "a " + std::to_string(v.text.size()) + "-byte integer";
    case Kind::Float: return "a float";
    case Kind::String: return "the string '" + v.text.substr(0, 40) + "'";
    case Kind::Bytes: return "bytes";
    case Kind::List: return "a list";
    case Kind::Tuple: return "a tuple";
    case Kind::Dict: return "a dict";
    case Kind::Set: return "a set";
    case Kind::Global: return v.text;
    case Kind::Storage: return "a storage";
    case Kind::Tensor: return "a tensor";
  }
  return "a value";
}

Ref read_pickle(const uint8_t* bytes, size_t size, const std::string& where, Document& into, size_t* consumed,
                const Limits& limits) {
  if (size == 0) throw Error(where + "empty pickle");
  Reader reader(bytes, size, where, into, limits);
  return reader.run(consumed);
}

}  // namespace diffuse::io::pickle
