#include "text/clip_text_clean.h"

#include "text/fix_text.h"
#include "text/html_unescape.h"
#include "text/unicode_text.h"

namespace diffuse::text {

std::string clip_clean_text(const std::string& utf8) {
  const std::u32string fixed = html_unescape(html_unescape(fix_text(utf8_to_u32(utf8))));
  std::u32string collapsed;
  collapsed.reserve(fixed.size());
  bool pending_space = false;
  for (char32_t c : fixed) {
    if (is_python_space(c)) {
      pending_space = !collapsed.empty();  // leading whitespace is stripped
      continue;
    }
    if (pending_space) collapsed.push_back(U' ');
    pending_space = false;
    collapsed.push_back(c);
  }
  return u32_to_utf8(to_lower(collapsed));
}

}  // namespace diffuse::text
