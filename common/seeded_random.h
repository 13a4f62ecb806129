// Small, platform-independent building blocks for seeded randomness (std::uniform_*_distribution
// is implementation-defined, so anything that must replay on every machine uses these on raw
// std::mt19937_64 output).
#pragma once

#include <cstdint>
#include <random>

namespace tailor {

// SplitMix64 finalizer (Steele, Lea & Flood 2014): spreads nearby inputs (seed, epoch, step, ...)
// into unrelated 64-bit seeds.
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Uniform integer in [0, bound), bound > 0, from raw engine output, rejecting the biased low
// range ("debiased modulo", as in Lemire 2019 §2).
inline uint64_t uniform_below(std::mt19937_64& engine, uint64_t bound) {
  const uint64_t threshold = (0 - bound) % bound;  // 2^64 mod bound
  while (true) {
    const uint64_t r = engine();
    if (r >= threshold) return r % bound;
  }
}

}  // namespace tailor
