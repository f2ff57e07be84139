#include "support/temp_dir.h"
#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <fstream>

#include "support/fixtures.h"
#include "util/error.h"

namespace diffuse::io {
namespace {

namespace fs = std::filesystem;

class SafetensorsTest : public test::TempDirTest {
 protected:

  // A file made of the 8-byte length of `header`, `header` (space-padded to a multiple of 8, as
  // the safetensors writer does, so the data is aligned), then `data`.
  fs::path write_file(const std::string& name, std::string header, const std::string& data,
                      std::optional<uint64_t> claimed_length = std::nullopt) {
    header.resize((header.size() + 7) / 8 * 8, ' ');
    const uint64_t length = claimed_length.value_or(header.size());
    std::string bytes(reinterpret_cast<const char*>(&length), 8);
    return write_raw(name, bytes + header + data);
  }
  fs::path write_raw(const std::string& name, const std::string& bytes) {
    const fs::path path = dir_ / name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  // The Error thrown by opening `path`, which must name the file.
  std::string open_error(const fs::path& path) {
    try {
      SafetensorsFile::open(path);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path.filename().string()), std::string::npos) << e.what();
      return e.what();
    }
    ADD_FAILURE() << "no error for " << path;
    return "";
  }

};

std::string floats(std::initializer_list<float> values) {
  std::string bytes;
  for (float v : values) bytes.append(reinterpret_cast<const char*>(&v), sizeof v);
  return bytes;
}

TEST_F(SafetensorsTest, ParsesTensorsInFileOrderWithMetadata) {
  const int64_t ids[] = {0, 1, 2};
  const uint16_t half_one = 0x3C00, bf16_two = 0x4000;
  std::string data = floats({1.5f, -2.0f, 3.25f, 4.0f});
  data.append(reinterpret_cast<const char*>(ids), sizeof ids);
  data.append(reinterpret_cast<const char*>(&half_one), 2);
  data.append(reinterpret_cast<const char*>(&bf16_two), 2);
  const auto path = write_file("ok.safetensors",
                               R"({"z.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
                               R"("__metadata__":{"format":"pt"},)"
                               R"("a.ids":{"dtype":"I64","shape":[3],"data_offsets":[16,40]},)"
                               R"("m.half":{"dtype":"F16","shape":[],"data_offsets":[40,42]},)"
                               R"("b.bf16":{"dtype":"BF16","shape":[1],"data_offsets":[42,44]}})",
                               data);
  const auto file = SafetensorsFile::open(path);
  ASSERT_EQ(file.tensors().size(), 4u);
  EXPECT_EQ(file.tensors()[0].name, "z.weight");
  EXPECT_EQ(file.tensors()[1].name, "a.ids");
  EXPECT_EQ(file.tensors()[2].name, "m.half");
  EXPECT_EQ(file.tensors()[1].dtype, "I64");
  EXPECT_EQ(file.tensors()[1].shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(file.tensors()[1].data_begin, 16u);
  EXPECT_EQ(file.tensors()[1].data_end, 40u);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_TRUE(file.contains("a.ids"));
  EXPECT_FALSE(file.contains("__metadata__"));

  const auto weight = file.tensor("z.weight");
  EXPECT_EQ(weight.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(weight, at::tensor({1.5f, -2.0f, 3.25f, 4.0f}).reshape({2, 2})));
  // Unconverted tensors view the mapping: two reads share memory.
  EXPECT_EQ(weight.data_ptr(), file.tensor("z.weight").data_ptr());
  EXPECT_EQ(weight.data_ptr(), file.tensor("z.weight", at::kFloat).data_ptr());
  EXPECT_TRUE(at::equal(file.tensor("a.ids"), at::tensor({0, 1, 2}, at::kLong)));
  EXPECT_EQ(file.tensor("m.half").dim(), 0);
  EXPECT_EQ(file.tensor("m.half", at::kFloat).item<float>(), 1.0f);
  EXPECT_EQ(file.tensor("b.bf16", at::kFloat).item<float>(), 2.0f);
  const auto as_half = file.tensor("z.weight", at::kHalf);
  EXPECT_EQ(as_half.scalar_type(), at::kHalf);
  EXPECT_NE(as_half.data_ptr(), weight.data_ptr());
}

TEST_F(SafetensorsTest, TensorsOutliveTheFileObjectAndInPlaceEditsStayPrivate) {
  const auto path = write_file("keep.safetensors", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                               floats({7.0f, 8.0f}));
  at::Tensor tensor;
  {
    const auto file = SafetensorsFile::open(path);
    tensor = file.tensor("w");
  }
  EXPECT_TRUE(at::equal(tensor, at::tensor({7.0f, 8.0f})));
  tensor.add_(1);  // copy-on-write mapping: no crash, and the file is untouched
  EXPECT_TRUE(at::equal(tensor, at::tensor({8.0f, 9.0f})));
  EXPECT_TRUE(at::equal(SafetensorsFile::open(path).tensor("w"), at::tensor({7.0f, 8.0f})));
}

TEST_F(SafetensorsTest, MisalignedDataIsCopied) {
  std::string data = "x" + floats({5.0f});
  const auto path = write_file("odd.safetensors",
                               R"({"pad":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                               R"("f":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}}  )",
                               data);
  EXPECT_EQ(SafetensorsFile::open(path).tensor("f").item<float>(), 5.0f);
}

TEST_F(SafetensorsTest, ReadsFixtureCheckpoint) {
  const auto file = SafetensorsFile::open(test::fixtures_dir() / "tiny-sd1" / "tiny-sd1.safetensors");
  EXPECT_EQ(file.tensors().size(), 513u);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  const std::string ids = "cond_stage_model.transformer.text_model.embeddings.position_ids";
  ASSERT_TRUE(file.contains(ids));
  EXPECT_TRUE(at::equal(file.tensor(ids), at::arange(77, at::kLong).reshape({1, 77})));
  const auto conv = file.tensor("model.diffusion_model.input_blocks.0.0.weight", at::kFloat);
  EXPECT_EQ(conv.sizes(), (std::vector<int64_t>{32, 4, 3, 3}));
  EXPECT_TRUE(at::equal(conv, file.tensor("model.diffusion_model.input_blocks.0.0.weight").to(at::kFloat)));
}

TEST_F(SafetensorsTest, UnknownTensorNameIsAnError) {
  const auto path = write_file("one.safetensors", R"({"w":{"dtype":"F32","shape":[],"data_offsets":[0,4]}})",
                               floats({1.0f}));
  const auto file = SafetensorsFile::open(path);
  try {
    file.tensor("missing.weight");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.weight"), std::string::npos);
  }
}

TEST_F(SafetensorsTest, RejectsMissingAndTooShortFiles) {
  EXPECT_NE(open_error(dir_ / "absent.safetensors").find("cannot open"), std::string::npos);
  EXPECT_NE(open_error(write_raw("empty.safetensors", "")).find("not a safetensors file"), std::string::npos);
  EXPECT_NE(open_error(write_raw("four.safetensors", "abcd")).find("too short"), std::string::npos);
  EXPECT_NE(open_error(dir_).find("not a regular file"), std::string::npos);
}

TEST_F(SafetensorsTest, RejectsHeaderLengthPastTheEnd) {
  const auto message = open_error(write_file("long.safetensors", "{}", "", 123456789));
  EXPECT_NE(message.find("header length 123456789 exceeds file size 16"), std::string::npos) << message;
}

TEST_F(SafetensorsTest, RejectsAbsurdHeaderLength) {
  const auto path = write_file("huge.safetensors", "{}", "", 150ull << 20);
  fs::resize_file(path, 200ull << 20);  // sparse: costs no disk
  EXPECT_NE(open_error(path).find("limit"), std::string::npos);
}

TEST_F(SafetensorsTest, RejectsBadJson) {
  EXPECT_NE(open_error(write_file("bad.safetensors", "{\"a\": [1, 2", "")).find("not valid JSON"), std::string::npos);
  EXPECT_NE(open_error(write_file("array.safetensors", "[1, 2]", "")).find("not a JSON object"), std::string::npos);
  EXPECT_NE(open_error(write_raw("text.safetensors", "hello, this is plain text")).find("not a safetensors file"),
            std::string::npos);
}

TEST_F(SafetensorsTest, RejectsBadEntries) {
  struct Case {
    const char* header;
    const char* expected;
  };
  const Case cases[] = {
      {R"({"a.b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "outside the data area (4 bytes"},
      {R"({"a.b":{"dtype":"F32","shape":[3],"data_offsets":[0,4]}})", "needs 12"},
      {R"({"a.b":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}})", "unknown dtype 'F99'"},
      {R"({"a.b":{"dtype":"U32","shape":[1],"data_offsets":[0,4]}})", "not supported"},
      {R"({"a.b":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "negative"},
      {R"({"a.b":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", "non-integer"},
      {R"({"a.b":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", "reversed"},
      {R"({"a.b":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", "data_offsets"},
      {R"({"a.b":{"shape":[1],"data_offsets":[0,4]}})", "dtype"},
      {R"({"a.b":{"dtype":"F32","data_offsets":[0,4]}})", "shape"},
      {R"({"a.b":[1]})", "not a JSON object"},
      {R"({"a.b":{"dtype":"U8","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}})", "too large"},
  };
  int index = 0;
  for (const auto& c : cases) {
    const auto message = open_error(write_file("e" + std::to_string(index++) + ".safetensors", c.header, "abcd"));
    EXPECT_NE(message.find("'a.b'"), std::string::npos) << message;
    EXPECT_NE(message.find(c.expected), std::string::npos) << message;
  }
}

TEST_F(SafetensorsTest, RejectsBadMetadataAndOverlaps) {
  EXPECT_NE(open_error(write_file("m.safetensors", R"({"__metadata__":{"k":1}})", "")).find("'k'"), std::string::npos);
  const auto overlap = open_error(write_file("o.safetensors",
                                             R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                             R"("y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                             floats({1, 2})));
  EXPECT_NE(overlap.find("overlap"), std::string::npos) << overlap;
}

TEST_F(SafetensorsTest, RejectsTruncatedData) {
  const auto path = write_file("cut.safetensors", R"({"layer.weight":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
                               floats({1, 2, 3, 4}));
  fs::resize_file(path, fs::file_size(path) - 6);
  const auto message = open_error(path);
  EXPECT_NE(message.find("'layer.weight'"), std::string::npos) << message;
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
}

}  // namespace
}  // namespace diffuse::io
