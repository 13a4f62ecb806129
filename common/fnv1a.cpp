#include "common/fnv1a.h"

#include <cstdio>

namespace tailor {

Fnv1a64& Fnv1a64::update(std::string_view bytes) {
  for (unsigned char c : bytes) {
    h_ ^= c;
    h_ *= 1099511628211ull;  // the 64-bit FNV prime
  }
  return *this;
}

std::string Fnv1a64::hex() const {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h_));
  return buf;
}

std::string fnv1a64_hex(std::string_view bytes) {
  return Fnv1a64().update(bytes).hex();
}

}  // namespace tailor
