// CLIP's prompt cleaning beyond the reference cases: ftfy's fixes, Python's html.unescape and lower().
// Expected values are what ftfy 6.1.1 + Python 3 give for the same input.
#include <gtest/gtest.h>

#include "text/clip_text_clean.h"

using diffuse::text::clip_clean_text;

TEST(ClipTextClean, WhitespaceCollapsedAndStripped) {
  EXPECT_EQ(clip_clean_text("  a\t\tb\n\nc  "), "a b c");
  EXPECT_EQ(clip_clean_text("a\u00a0b\u3000c\u2028d"), "a b c d");  // no-break, ideographic, line separator
  EXPECT_EQ(clip_clean_text(" \t\n"), "");
  EXPECT_EQ(clip_clean_text("zero\u200bwidth"), "zero\u200bwidth");  // U+200B is not whitespace in Python
}

TEST(ClipTextClean, LowerCaseIsPythonsStrLower) {
  EXPECT_EQ(clip_clean_text("ΣΑΣ ΟΔΟΣ"), "σας οδος");    // final sigma
  EXPECT_EQ(clip_clean_text("İstanbul"), "i\u0307stanbul");  // full case mapping
  EXPECT_EQ(clip_clean_text("ÉCOLE"), "école");
}

TEST(ClipTextClean, HtmlUnescapeFollowsPython) {
  EXPECT_EQ(clip_clean_text("&copyright 2024"), "©right 2024");  // legacy name as a prefix
  EXPECT_EQ(clip_clean_text("&#x1F525; fire"), "🔥 fire");
  EXPECT_EQ(clip_clean_text("&#128;"), "€");  // C1 range read as Windows-1252
  EXPECT_EQ(clip_clean_text("&notit; &notin; &amp &ampx; &#65 &lang; &#x; &;"), "¬it; ∉ & &x; a ⟨ &#x; &;");
  EXPECT_EQ(clip_clean_text("&#0;"), "\ufffd");
  EXPECT_EQ(clip_clean_text("&#99999999999;"), "\ufffd");
  EXPECT_EQ(clip_clean_text("x&#1;y"), "xy");
  EXPECT_EQ(clip_clean_text("&unknownname; &Eacute &eacute;"), "&unknownname; é é");
  // HTML5-only names, including two-code-point values.
  EXPECT_EQ(clip_clean_text("&Lt;3 &checkmark; &NotEqualTilde; &fjlig; &ThickSpace;x"),
            "≪3 ✓ \u2242\u0338 fj x");
}

TEST(ClipTextClean, FtfyUnescapesUntilNothingChangesUnlessTheTextHasATag) {
  EXPECT_EQ(clip_clean_text("Tom &amp;amp;amp; Jerry"), "tom & jerry");
  // With a '<' ftfy leaves entities alone and only CLIP's two html.unescape passes apply.
  EXPECT_EQ(clip_clean_text("<b> &amp;amp;amp;"), "<b> &amp;");
  EXPECT_EQ(clip_clean_text("&EACUTE;T&EACUTE;"), "été");  // all-caps entity names (ftfy only)
}

TEST(ClipTextClean, MojibakeIsDecoded) {
  EXPECT_EQ(clip_clean_text("cafÃ© and donâ€™t"), "café and don't");
  EXPECT_EQ(clip_clean_text("Ω≈ and cafÃ©"), "ω≈ and café");  // embedded in text no single-byte encoding holds
  EXPECT_EQ(clip_clean_text("café naïve façade über straße"), "café naïve façade über straße");
  EXPECT_EQ(clip_clean_text("©®™ ± ° µ"), "©®™ ± ° µ");
}

TEST(ClipTextClean, CharacterFixes) {
  EXPECT_EQ(clip_clean_text("ﬁne ﬂower ǆungla"), "fine flower džungla");  // Latin ligatures and digraphs
  EXPECT_EQ(clip_clean_text("ＦＵＬＬ　ｗｉｄｔｈ １２３"), "full width 123");
  EXPECT_EQ(clip_clean_text("Ｕﾀｰﾝ"), "uターン");  // halfwidth katakana widened
  EXPECT_EQ(clip_clean_text("“quoted” ‘single’ ʼx"), "\"quoted\" 'single' 'x");
  EXPECT_EQ(clip_clean_text("wait\u0085"), "wait…");  // C1 control read as Windows-1252
  EXPECT_EQ(clip_clean_text("\x1b[31mred\x1b[0m text"), "red text");
  EXPECT_EQ(clip_clean_text("bell\x07 bom\ufeff"), "bell bom");
  EXPECT_EQ(clip_clean_text("e\u0301"), "é");  // NFC
}

TEST(ClipTextClean, IllFormedUtf8BecomesReplacementCharacters) {
  EXPECT_EQ(clip_clean_text("a\xff" "b"), "a\ufffdb");
}
