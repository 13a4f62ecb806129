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

// Same for a directory: `fill(tmp_dir)` populates a fresh temporary directory, every file and
// directory in it is fsynced, and it then replaces `dir` (replace_dir).
void write_dir_atomic(const std::filesystem::path& dir,
                      const std::function<void(const std::filesystem::path&)>& fill);

// The temporary sibling write_atomic_with uses, ".<name>.tmp.<pid>", for writers that stream into
// a file themselves and rename it when complete (models/io/safetensors_stream.h).
std::filesystem::path temp_sibling_path(const std::filesystem::path& path);

// Moves a complete directory `tmp_dir` to `dir` as write_dir_atomic does, and fsyncs the parent
// directory. An existing `dir` is swapped with `tmp_dir` in one atomic renameat2
// RENAME_EXCHANGE, so `dir` names a complete directory at every instant, then the old contents
// are removed; where the filesystem lacks the exchange, `dir` is moved aside first (a short
// window without it). Used by train/checkpoint/sharded_checkpoint.h, whose temporary directory is
// filled (and fsynced) by several processes.
void replace_dir(const std::filesystem::path& tmp_dir, const std::filesystem::path& dir);

// Reads a whole file; throws tailor::Error("io", ...) naming the path if it cannot.
std::string read_file(const std::filesystem::path& path);

}  // namespace tailor
