// FNV-1a 64 against the published test vectors (Fowler-Noll-Vo reference test suite), so digests
// written by one build are recomputed identically by another.
#include <gtest/gtest.h>

#include "common/fnv1a.h"

TEST(Fnv1a64, PublishedTestVectors) {
  EXPECT_EQ(tailor::fnv1a64_hex(""), "cbf29ce484222325");  // the offset basis
  EXPECT_EQ(tailor::fnv1a64_hex("a"), "af63dc4c8601ec8c");
  EXPECT_EQ(tailor::fnv1a64_hex("foobar"), "85944171f73967e8");
}

TEST(Fnv1a64, UpdatesConcatenate) {
  tailor::Fnv1a64 h;
  h.update("foo").update("bar");
  EXPECT_EQ(h.hex(), tailor::fnv1a64_hex("foobar"));
}
