#include <gtest/gtest.h>

#include <filesystem>

#include "common/atomic_file.h"
#include "common/error.h"

namespace fs = std::filesystem;

TEST(AtomicFile, WriteThenReadRoundTrips) {
  const fs::path dir = fs::temp_directory_path() / "tailor_atomic_file_test";
  fs::remove_all(dir);
  tailor::write_file_atomic(dir / "a.txt", "hello");
  EXPECT_EQ(tailor::read_file(dir / "a.txt"), "hello");
  tailor::write_file_atomic(dir / "a.txt", "replaced");
  EXPECT_EQ(tailor::read_file(dir / "a.txt"), "replaced");
  fs::remove_all(dir);
}

TEST(AtomicFile, FailedWriterLeavesOldContentsAndNoTemporary) {
  const fs::path dir = fs::temp_directory_path() / "tailor_atomic_file_fail";
  fs::remove_all(dir);
  tailor::write_file_atomic(dir / "a.txt", "old");
  EXPECT_THROW(tailor::write_atomic_with(dir / "a.txt",
                                         [](const fs::path& tmp) {
                                           tailor::write_file_atomic(tmp, "partial");
                                           throw tailor::Error("test", "boom");
                                         }),
               tailor::Error);
  EXPECT_EQ(tailor::read_file(dir / "a.txt"), "old");
  int entries = 0;
  for (auto& e : fs::directory_iterator(dir)) entries += 1, (void)e;
  EXPECT_EQ(entries, 1);
  fs::remove_all(dir);
}

TEST(AtomicFile, DirectoryReplacedWhole) {
  const fs::path dir = fs::temp_directory_path() / "tailor_atomic_dir" / "ckpt";
  fs::remove_all(dir.parent_path());
  tailor::write_dir_atomic(dir, [](const fs::path& tmp) { tailor::write_file_atomic(tmp / "x", "1"); });
  tailor::write_dir_atomic(dir, [](const fs::path& tmp) { tailor::write_file_atomic(tmp / "y", "2"); });
  EXPECT_FALSE(fs::exists(dir / "x"));
  EXPECT_EQ(tailor::read_file(dir / "y"), "2");
  EXPECT_THROW(tailor::read_file(dir / "missing"), tailor::Error);
  fs::remove_all(dir.parent_path());
}
