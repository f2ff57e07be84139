// Extra-network tags as AUTOMATIC1111's modules/extra_networks.py reads them.
#include <gtest/gtest.h>

#include "text/extra_networks.h"

namespace diffuse::text {
namespace {

TEST(ExtraNetworks, TagsAreTakenOutWithTheirArguments) {
  const auto taken = take_extra_network_tags("a cat <lora:cute_cat:0.8>, (sitting:1.2) <lyco:paint:0.5:te=0.3:unet=1>");
  EXPECT_EQ(taken.text, "a cat , (sitting:1.2) ");
  ASSERT_EQ(taken.tags.size(), 2u);
  EXPECT_EQ(taken.tags[0].kind, "lora");
  EXPECT_EQ(taken.tags[0].positional, (std::vector<std::string>{"cute_cat", "0.8"}));
  EXPECT_TRUE(taken.tags[0].named.empty());
  EXPECT_EQ(taken.tags[1].kind, "lyco");
  EXPECT_EQ(taken.tags[1].positional, (std::vector<std::string>{"paint", "0.5"}));
  EXPECT_EQ(taken.tags[1].named, (std::map<std::string, std::string>{{"te", "0.3"}, {"unet", "1"}}));
}

TEST(ExtraNetworks, TextThatIsNoTagStays) {
  for (const std::string prompt : {"a < b > c", "<:x>", "<lora:>", "<lo ra:x>", "<lora:x", "x <lora", "5 < 6"}) {
    const auto taken = take_extra_network_tags(prompt);
    EXPECT_EQ(taken.text, prompt);
    EXPECT_TRUE(taken.tags.empty()) << prompt;
  }
}

TEST(ExtraNetworks, ArgumentsRunToTheFirstClosingBracket) {
  const auto taken = take_extra_network_tags("<lora:a b:1>> <hypernet:x::2>");
  EXPECT_EQ(taken.text, "> ");
  ASSERT_EQ(taken.tags.size(), 2u);
  EXPECT_EQ(taken.tags[0].positional, (std::vector<std::string>{"a b", "1"}));
  EXPECT_EQ(taken.tags[1].kind, "hypernet");
  EXPECT_EQ(taken.tags[1].positional, (std::vector<std::string>{"x", "", "2"}));
}

}  // namespace
}  // namespace diffuse::text
