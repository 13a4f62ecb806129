// Byte-level helpers for GPT-2's tokenizer: UTF-8 decoding of untrusted bytes and the
// bytes_to_unicode table that spells every byte as a printable character in vocab.json.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tailor::byte_level {

// Decodes one UTF-8 sequence at `text[pos]` (pos < text.size()). Returns its length in bytes
// (1 to 4) and sets `cp`; returns 0 for a byte that does not start a well-formed sequence
// (stray continuation byte, overlong form, surrogate, > U+10FFFF, truncated sequence).
size_t decode_utf8(std::string_view text, size_t pos, char32_t& cp);

// Appends the UTF-8 encoding of `cp` (a Unicode scalar value) to `out`.
void append_utf8(std::string& out, char32_t cp);

// GPT-2's bytes_to_unicode (openai/gpt-2 src/encoder.py): bytes 33-126, 161-172 and 174-255
// stand for themselves; the other 68 bytes map to U+0100 + n in byte order (' ' -> 'Ġ' U+0120,
// '\n' -> 'Ċ' U+010A).
char32_t byte_to_code_point(uint8_t byte);

// Inverse of byte_to_code_point; -1 if `cp` is not one of the 256 byte symbols.
int code_point_to_byte(char32_t cp);

// The vocab.json spelling of a byte string: every byte replaced by its symbol, UTF-8 encoded.
std::string bytes_to_symbols(std::string_view bytes);

// Inverse of bytes_to_symbols; nullopt if `symbols` is not valid UTF-8 or holds a character
// outside the table (e.g. an added token's content).
std::optional<std::string> symbols_to_bytes(std::string_view symbols);

}  // namespace tailor::byte_level
