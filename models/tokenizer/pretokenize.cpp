#include "models/tokenizer/pretokenize.h"

#include <unicode/uchar.h>

#include <cstdint>

#include "models/tokenizer/byte_level.h"

namespace tailor {

namespace {

enum class CharClass : uint8_t { kLetter, kNumber, kSpace, kOther };

CharClass classify(char32_t cp) {
  if (cp < 0x80) {
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return CharClass::kLetter;
    if (cp >= '0' && cp <= '9') return CharClass::kNumber;
    if (cp == ' ' || (cp >= '\t' && cp <= '\r')) return CharClass::kSpace;
    return CharClass::kOther;
  }
  switch (u_charType(UChar32(cp))) {
    case U_UPPERCASE_LETTER:
    case U_LOWERCASE_LETTER:
    case U_TITLECASE_LETTER:
    case U_MODIFIER_LETTER:
    case U_OTHER_LETTER:
      return CharClass::kLetter;
    case U_DECIMAL_DIGIT_NUMBER:
    case U_LETTER_NUMBER:
    case U_OTHER_NUMBER:
      return CharClass::kNumber;
    default:
      break;
  }
  return u_hasBinaryProperty(UChar32(cp), UCHAR_WHITE_SPACE) ? CharClass::kSpace
                                                             : CharClass::kOther;
}

// One code point (or one stray byte that is not well-formed UTF-8) of the input.
struct Unit {
  char32_t cp;  // 0xFFFFFFFF for a stray byte
  size_t len;   // bytes
  CharClass cls;
};

Unit unit_at(std::string_view text, size_t pos) {
  char32_t cp = 0;
  const size_t len = byte_level::decode_utf8(text, pos, cp);
  if (len == 0) return {0xFFFFFFFF, 1, CharClass::kOther};
  return {cp, len, classify(cp)};
}

// Length in bytes of the contraction ('s 't 're 've 'm 'll 'd, lowercase only) at pos, or 0.
// All of it is ASCII, so comparing bytes is comparing code points.
size_t contraction_length(std::string_view text, size_t pos) {
  if (text[pos] != '\'' || pos + 1 >= text.size()) return 0;
  const char a = text[pos + 1];
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (pos + 2 >= text.size()) return 0;
  const char b = text[pos + 2];
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

}  // namespace

std::vector<std::string_view> gpt2_pretokenize(std::string_view text) {
  const size_t n = text.size();
  std::vector<std::string_view> pieces;
  pieces.reserve(n / 4 + 1);
  size_t i = 0;  // byte offset of the next piece
  while (i < n) {
    // 's|'t|'re|'ve|'m|'ll|'d
    if (const size_t len = contraction_length(text, i)) {
      pieces.push_back(text.substr(i, len));
      i += len;
      continue;
    }
    const Unit first = unit_at(text, i);
    // ' ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+': one optional U+0020, then a run of one class.
    size_t j = i;
    Unit run = first;
    if (first.cp == ' ' && i + 1 < n) {
      const Unit second = unit_at(text, i + 1);
      if (second.cls != CharClass::kSpace) j = i + 1, run = second;
    }
    if (run.cls != CharClass::kSpace) {
      size_t k = j + run.len;
      while (k < n) {
        const Unit u = unit_at(text, k);
        if (u.cls != run.cls) break;
        k += u.len;
      }
      pieces.push_back(text.substr(i, k - i));
      i = k;
      continue;
    }
    // '\s+(?!\S)|\s+': a whitespace run that is followed by a non-space leaves its last
    // character to start the next piece (so " world" keeps its space), unless the run is a
    // single character, which the plain '\s+' then takes.
    size_t k = i + first.len, last = i;
    while (k < n) {
      const Unit u = unit_at(text, k);
      if (u.cls != CharClass::kSpace) break;
      last = k;
      k += u.len;
    }
    if (k < n && last > i) k = last;
    pieces.push_back(text.substr(i, k - i));
    i = k;
  }
  return pieces;
}

}  // namespace tailor
