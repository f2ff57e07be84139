// The restricted unpickler on pickles written opcode by opcode: what checkpoints use reads to the
// values Python's pickle gives; shared references stay shared; the bounds hold.
#include "io/pickle_reader.h"

#include <gtest/gtest.h>

#include "util/error.h"

namespace diffuse::io::pickle {
namespace {

Document read(const std::string& bytes, Ref* root = nullptr) {
  Document doc;
  const Ref ref = read_pickle(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "test: ", doc);
  if (root) *root = ref;
  doc.root = ref;
  return doc;
}

std::string error_of(const std::string& bytes) {
  try {
    read(bytes);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

// Bytes written by Python's pickle.dumps, as hex.
std::string from_hex(const std::string& hex) {
  std::string bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) bytes += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return bytes;
}

TEST(PickleReader, ReadsNumbersStringsAndContainers) {
  // pickle.dumps({'a': [1, -2, 300, 70000, 1.5], 'b': (True, None), 'c': b'\x00\xff'}, protocol=2):
  // the bytes go through _codecs.encode, as Python 3 writes them for protocol 2.
  Ref root = 0;
  const auto doc = read(from_hex("80027d71002858010000006171015d7102284b014afeffffff4d2c014a70110100473ff800000000000065"
                                 "5801000000627103884e8671045801000000637105635f636f646563730a656e636f64650a710658030000"
                                 "0000c3bf710758060000006c6174696e31710886710952710a752e"),
                        &root);
  ASSERT_EQ(doc.at(root).kind, Kind::Dict);
  const auto a = doc.get(root, "a");
  ASSERT_TRUE(a);
  const auto& list = doc.at(*a);
  ASSERT_EQ(list.kind, Kind::List);
  ASSERT_EQ(list.items.size(), 5u);
  EXPECT_EQ(doc.at(list.items[0]).integer, 1);
  EXPECT_EQ(doc.at(list.items[1]).integer, -2);
  EXPECT_EQ(doc.at(list.items[2]).integer, 300);
  EXPECT_EQ(doc.at(list.items[3]).integer, 70000);
  EXPECT_EQ(doc.at(list.items[4]).real, 1.5);
  const auto& b = doc.at(*doc.get(root, "b"));
  ASSERT_EQ(b.kind, Kind::Tuple);
  EXPECT_EQ(doc.at(b.items[0]).kind, Kind::Bool);
  EXPECT_EQ(doc.at(b.items[1]).kind, Kind::None);
  const auto& c = doc.at(*doc.get(root, "c"));
  ASSERT_EQ(c.kind, Kind::Bytes);
  EXPECT_EQ(c.text, std::string("\x00\xff", 2));
}

TEST(PickleReader, MemoReferencesStayShared) {
  // x = []; pickle.dumps([x, x, x], protocol=2): one list, referenced three times, never copied.
  Ref root = 0;
  const auto doc = read(from_hex("80025d7100285d710168016801652e"), &root);
  const auto& outer = doc.at(root);
  ASSERT_EQ(outer.items.size(), 3u);
  EXPECT_EQ(outer.items[0], outer.items[1]);
  EXPECT_EQ(outer.items[1], outer.items[2]);
}

TEST(PickleReader, OrderedDictAndLongIntegers) {
  // pickle.dumps(OrderedDict([('k', 2**40)]), protocol=4): STACK_GLOBAL, MEMOIZE, FRAME; and a LONG1
  // beyond 64 bits.
  Ref root = 0;
  const auto doc = read(from_hex("8004952f000000000000008c0b636f6c6c656374696f6e73948c0b4f726465726564446963749493942952"
                                 "948c016b948a06000000000001732e"),
                        &root);
  ASSERT_EQ(doc.at(root).kind, Kind::Dict);
  EXPECT_EQ(doc.at(*doc.get(root, "k")).integer, int64_t{1} << 40);
  const auto big = read(from_hex("80028a09000000000000000001" "2e"), &root);
  EXPECT_EQ(big.at(root).kind, Kind::BigInt);
}

TEST(PickleReader, EveryWayOfNamingAGlobalIsChecked) {
  EXPECT_NE(error_of("\x80\x02" "cos\nsystem\n."), "no error");
  EXPECT_NE(error_of("\x80\x02" "cos\nsystem\n.").find("test: pickle byte 2: forbidden global os.system"), std::string::npos);
  EXPECT_NE(error_of("\x80\x04\x8c\x02os\x8c\x06system\x93.").find("forbidden global os.system"), std::string::npos);
  EXPECT_NE(error_of("(S'touch'\nios\nsystem\n.").find("forbidden global os.system"), std::string::npos);
  EXPECT_NE(error_of("\x80\x02\x82\x01.").find("unsupported opcode EXT1"), std::string::npos);
  // A global on the list is only a value: calling it with the wrong arguments is refused too.
  EXPECT_NE(error_of("\x80\x02" "ctorch\nHalfStorage\n)R.").find("constructing a storage torch.HalfStorage directly"),
            std::string::npos);
}

TEST(PickleReader, BoundsEndCraftedInputsQuickly) {
  std::string deep = "\x80\x02";
  for (int i = 0; i < 2000; ++i) deep += "]";
  for (int i = 0; i < 1999; ++i) deep += "a";
  deep += ".";
  EXPECT_NE(error_of(deep).find("nested deeper than 1000 levels"), std::string::npos);
  std::string marks = "\x80\x02" + std::string(1500, '(');
  EXPECT_NE(error_of(marks).find("more than 1000 open MARKs"), std::string::npos);
  EXPECT_NE(error_of(from_hex("80025d71006800612e")).find("a container put inside itself"), std::string::npos);
  EXPECT_NE(error_of("\x80\x02]").find("truncated pickle"), std::string::npos);
  EXPECT_NE(error_of("\x80\x02" "a.").find("stack underflow"), std::string::npos);
}

}  // namespace
}  // namespace diffuse::io::pickle
