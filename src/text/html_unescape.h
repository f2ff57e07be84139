// HTML character references, as CLIP's text cleaning decodes them.
//
// Every HTML5 named reference (html5_entities.inc, the table Python's html.entities.html5 holds) and
// numeric references (&#39; &#x1F525;), with Python's rules for both.
#pragma once
#include <string>

namespace diffuse::text {

// Python's html.unescape(): also accepts references without ';' for the legacy (Latin-1) names and
// longest-prefix matches ("&copyright" -> "©right"), maps &#128;..&#159; through Windows-1252, etc.
std::u32string html_unescape(const std::u32string& text);

// ftfy's unescape_html(): only complete `&name;` / `&#...;` references, plus all-caps names of lower-case
// entities ("&EACUTE;" -> "É").
std::u32string ftfy_unescape_html(const std::u32string& text);

}  // namespace diffuse::text
