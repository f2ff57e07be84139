// The part of ftfy.fix_text() (ftfy 6.1.1, default settings) that CLIP's tokenizer runs on every prompt.
//
// Carried, in ftfy's order and repeated until nothing changes: HTML entities (unless the line holds a
// '<'), UTF-8 mojibake decoded as Latin-1 or Windows-1252 ("cafÃ©" -> "café", "donâ€™t" -> "don’t",
// whole text first, then embedded sequences), C1 controls read as Windows-1252, Latin ligatures and
// digraphs ("ﬁ" -> "fi"), fullwidth/halfwidth forms (NFKC of U+FF01..U+FFEF, U+3000 -> space), curly
// quotes -> straight, line breaks -> "\n", ANSI terminal escapes and stray control characters removed,
// then NFC.
//
// Not carried: ftfy's "badness" heuristic (here any text whose re-encoded bytes are well-formed UTF-8
// counts as mojibake, which in practice is only ever true of mojibake), mojibake through Windows-1250/
// 1251/1253/1254, ISO-8859-2, MacRoman or cp437, the restore_byte_a0 and lossy-sequence repairs, and
// CESU-8 / Java "UTF-8 variants".
#pragma once
#include <string>

namespace diffuse::text {

std::u32string fix_text(const std::u32string& text);

}  // namespace diffuse::text
