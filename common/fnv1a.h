// FNV-1a, 64 bit (Fowler-Noll-Vo): a fixed, platform-independent hash for digests that must agree
// across builds, machines and runs (recipe hashes, cache keys, tokenizer identities, checkpoint
// manifests), unlike std::hash, whose values are the library's choice.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tailor {

class Fnv1a64 {
 public:
  Fnv1a64& update(std::string_view bytes);
  uint64_t value() const { return h_; }
  std::string hex() const;  // 16 lowercase hex digits

 private:
  uint64_t h_ = 14695981039346656037ull;  // the offset basis
};

// Fnv1a64().update(bytes).hex(); "a" -> "af63dc4c8601ec8c" (the published test vector).
std::string fnv1a64_hex(std::string_view bytes);

}  // namespace tailor
