#include "models/tokenizer/byte_level.h"

#include <array>

namespace tailor::byte_level {

namespace {

struct ByteTable {
  std::array<char32_t, 256> to_cp{};
  std::array<int16_t, 324> from_cp{};  // every symbol is below U+0100 + 68 = U+0144
  std::array<std::string, 256> symbol;
};

const ByteTable& table() {
  static const ByteTable t = [] {
    ByteTable t;
    t.from_cp.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      t.to_cp[b] = printable ? char32_t(b) : char32_t(256 + n++);
      t.from_cp[t.to_cp[b]] = int16_t(b);
      append_utf8(t.symbol[b], t.to_cp[b]);
    }
    return t;
  }();
  return t;
}

bool is_continuation(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

}  // namespace

size_t decode_utf8(std::string_view text, size_t pos, char32_t& cp) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[pos + k]); };
  const size_t left = text.size() - pos;
  const unsigned char b0 = byte(0);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  // Ranges of the second byte per lead byte follow Unicode Table 3-7 (well-formed sequences).
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    if (left < 2 || !is_continuation(byte(1))) return 0;
    cp = (char32_t(b0 & 0x1F) << 6) | (byte(1) & 0x3F);
    return 2;
  }
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (left < 3) return 0;
    const unsigned char b1 = byte(1);
    const unsigned char lo = b0 == 0xE0 ? 0xA0 : 0x80, hi = b0 == 0xED ? 0x9F : 0xBF;
    if (b1 < lo || b1 > hi || !is_continuation(byte(2))) return 0;
    cp = (char32_t(b0 & 0x0F) << 12) | (char32_t(b1 & 0x3F) << 6) | (byte(2) & 0x3F);
    return 3;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (left < 4) return 0;
    const unsigned char b1 = byte(1);
    const unsigned char lo = b0 == 0xF0 ? 0x90 : 0x80, hi = b0 == 0xF4 ? 0x8F : 0xBF;
    if (b1 < lo || b1 > hi || !is_continuation(byte(2)) || !is_continuation(byte(3))) return 0;
    cp = (char32_t(b0 & 0x07) << 18) | (char32_t(b1 & 0x3F) << 12) |
         (char32_t(byte(2) & 0x3F) << 6) | (byte(3) & 0x3F);
    return 4;
  }
  return 0;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

char32_t byte_to_code_point(uint8_t byte) {
  return table().to_cp[byte];
}

int code_point_to_byte(char32_t cp) {
  return cp < table().from_cp.size() ? table().from_cp[cp] : -1;
}

std::string bytes_to_symbols(std::string_view bytes) {
  const ByteTable& t = table();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes)
    out += t.symbol[static_cast<unsigned char>(c)];
  return out;
}

std::optional<std::string> symbols_to_bytes(std::string_view symbols) {
  std::string out;
  out.reserve(symbols.size());
  for (size_t pos = 0; pos < symbols.size();) {
    char32_t cp = 0;
    const size_t len = decode_utf8(symbols, pos, cp);
    if (len == 0) return std::nullopt;
    const int byte = code_point_to_byte(cp);
    if (byte < 0) return std::nullopt;
    out += char(byte);
    pos += len;
  }
  return out;
}

}  // namespace tailor::byte_level
