#include <gtest/gtest.h>

#include "image/contact_sheet.h"
#include "util/error.h"

namespace diffuse::image {
namespace {

TEST(ContactSheet, PlacesCellsInRowsWithGaps) {
  std::vector<at::Tensor> cells;
  for (int i = 0; i < 5; ++i) cells.push_back(at::full({2, 3, 3}, i * 10, at::kByte));
  const auto sheet = contact_sheet(cells, 3, 1, 255);
  // 3 columns x (3 + 1) + 1 wide, 2 rows x (2 + 1) + 1 high.
  ASSERT_EQ(sheet.sizes(), (at::IntArrayRef{7, 13, 3}));
  EXPECT_EQ(sheet[0][0][0].item<uint8_t>(), 255);
  EXPECT_EQ(sheet[1][1][0].item<uint8_t>(), 0);    // cell 0
  EXPECT_EQ(sheet[1][9][0].item<uint8_t>(), 20);   // cell 2: column 2 starts at 1 + 2 * 4
  EXPECT_EQ(sheet[4][5][0].item<uint8_t>(), 40);   // cell 4: row 1, column 1
  EXPECT_EQ(sheet[4][9][0].item<uint8_t>(), 255);  // no sixth cell
  EXPECT_THROW(contact_sheet({cells[0], at::zeros({3, 3, 3}, at::kByte)}, 2), Error);
}

TEST(ContactSheet, SideBySideAndResize) {
  const auto row = side_by_side({at::zeros({2, 2, 3}, at::kByte), at::full({2, 3, 3}, 7, at::kByte)}, 2, 100);
  ASSERT_EQ(row.sizes(), (at::IntArrayRef{2, 7, 3}));
  EXPECT_EQ(row[0][2][0].item<uint8_t>(), 100);
  EXPECT_EQ(row[1][6][2].item<uint8_t>(), 7);
  auto checker = at::zeros({2, 2, 3}, at::kByte);
  checker[0][0].fill_(200);
  const auto big = resize_image(checker, 4, 4);  // nearest: each pixel becomes 2x2
  EXPECT_EQ(big[1][1][0].item<uint8_t>(), 200);
  EXPECT_EQ(big[2][2][0].item<uint8_t>(), 0);
  const auto small = resize_image(checker, 1, 1);  // area average
  EXPECT_EQ(small[0][0][0].item<uint8_t>(), 50);
}

}  // namespace
}  // namespace diffuse::image
