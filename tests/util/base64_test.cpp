#include "util/base64.h"

#include <gtest/gtest.h>

namespace diffuse {
namespace {

TEST(Base64, RoundTripsEveryLengthAndRefusesWhatIsNotBase64) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  std::string bytes;
  for (int i = 0; i < 300; ++i) {
    EXPECT_EQ(base64_decode(base64_encode(bytes)), bytes) << i;
    bytes += static_cast<char>(i * 37);
  }
  EXPECT_EQ(base64_decode("Zm9v\nYmFy"), "foobar");
  EXPECT_EQ(base64_decode("Zm9vYg"), "foob");  // padding left out, as some clients do
  EXPECT_FALSE(base64_decode("Zm9v!"));
  EXPECT_FALSE(base64_decode("Zg==Zg"));
  EXPECT_FALSE(base64_decode("Z"));
}

}  // namespace
}  // namespace diffuse
