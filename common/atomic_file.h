// Crash-safe writes: everything tailor writes goes to a temporary sibling first and is renamed
// into place only when complete, so a reader never sees a half-written file or directory.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

namespace tailor {

// Writes `contents` to `path` via `path.tmp.<pid>` + fsync + rename.
void write_file_atomic(const std::filesystem::path& path, const std::string& contents);

// Calls `write(tmp_path)` to produce a file at a temporary sibling path, then renames it to
// `path`. If `write` throws, the temporary is removed and the exception propagates.
void write_atomic_with(const std::filesystem::path& path,
                       const std::function<void(const std::filesystem::path&)>& write);

// Same for a directory: `fill(tmp_dir)` populates a fresh temporary directory which then replaces
// `dir` (an existing `dir` is moved aside and removed only after the rename succeeded).
void write_dir_atomic(const std::filesystem::path& dir,
                      const std::function<void(const std::filesystem::path&)>& fill);

// The temporary sibling write_atomic_with uses, ".<name>.tmp.<pid>", for writers that stream into
// a file themselves and rename it when complete (models/io/safetensors_stream.h).
std::filesystem::path temp_sibling_path(const std::filesystem::path& path);

// Moves a complete directory `tmp_dir` to `dir` as write_dir_atomic does: an existing `dir` is
// moved aside and removed only after the rename succeeded (dist/sharded_checkpoint.h, whose
// temporary directory is filled by several processes).
void replace_dir(const std::filesystem::path& tmp_dir, const std::filesystem::path& dir);

// Reads a whole file; throws tailor::Error("io", ...) naming the path if it cannot.
std::string read_file(const std::filesystem::path& path);

}  // namespace tailor
