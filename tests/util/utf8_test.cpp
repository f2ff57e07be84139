// The one strict UTF-8 decoder (pickle strings, PNG text, mojibake repair): what Python's
// bytes.decode("utf-8") accepts, and nothing else.
#include <gtest/gtest.h>

#include "util/utf8.h"

namespace diffuse {
namespace {

TEST(Utf8, DecodesEveryLength) {
  EXPECT_EQ(decode_utf8("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"), std::u32string(U"a\u00E9\u20AC\U0001F600"));
  EXPECT_EQ(decode_utf8(""), std::u32string());
  EXPECT_EQ(decode_utf8("\xF4\x8F\xBF\xBF"), std::u32string(U"\U0010FFFF"));
}

TEST(Utf8, RefusesWhatPythonRefuses) {
  for (const char* bad : {"\x80", "\xC3", "\xE2\x82", "\xC0\xAF", "\xE0\x80\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80",
                          "\xF8\x88\x80\x80\x80", "\xFF", "a\xC3(b"}) {
    EXPECT_FALSE(is_valid_utf8(bad)) << ::testing::PrintToString(std::string(bad));
  }
}

}  // namespace
}  // namespace diffuse
