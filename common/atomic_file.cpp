#include "common/atomic_file.h"

#include <fcntl.h>
#include <stdio.h>  // renameat2, RENAME_EXCHANGE (glibc >= 2.28, _GNU_SOURCE)
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace tailor {
namespace fs = std::filesystem;

namespace {

// Flushes file contents to disk so the rename cannot expose an empty file after a power loss.
void fsync_path(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// fsync of every regular file and directory below `root` (and `root` itself), so a directory that
// is then renamed into place holds its contents after a power loss.
void fsync_tree(const fs::path& root) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->is_regular_file(ec) || it->is_directory(ec)) fsync_path(it->path());
  }
  fsync_path(root);
}

void ensure_parent(const fs::path& path) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
}

}  // namespace

fs::path temp_sibling_path(const fs::path& path) {
  return path.parent_path() / ("." + path.filename().string() + ".tmp." + std::to_string(getpid()));
}

void replace_dir(const fs::path& tmp, const fs::path& dir) {
  std::error_code ec;
  const fs::path parent = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
  if (fs::exists(dir)) {
    // One atomic swap (Linux renameat2 RENAME_EXCHANGE): `dir` names the old or the new
    // directory at every instant, never nothing, so a `latest` pointing at it stays valid.
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) == 0) {
      fsync_path(parent);
      fs::remove_all(tmp, ec);  // now the old contents
      return;
    }
    // Filesystems without the exchange: two renames, with a short window without `dir`.
    const fs::path old =
        dir.parent_path() / ("." + dir.filename().string() + ".old." + std::to_string(getpid()));
    fs::remove_all(old, ec);
    fs::rename(dir, old);
    fs::rename(tmp, dir);
    fsync_path(parent);
    fs::remove_all(old, ec);
  } else {
    fs::rename(tmp, dir);
    fsync_path(parent);
  }
}

void write_atomic_with(const fs::path& path, const std::function<void(const fs::path&)>& write) {
  ensure_parent(path);
  const fs::path tmp = temp_sibling_path(path);
  try {
    write(tmp);
    fsync_path(tmp);
    fs::rename(tmp, path);
    fsync_path(path.has_parent_path() ? path.parent_path() : fs::path("."));  // the new entry
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

void write_file_atomic(const fs::path& path, const std::string& contents) {
  write_atomic_with(path, [&](const fs::path& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out)
      throw Error("io", "cannot open " + tmp.string() + " for writing: " + std::strerror(errno));
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.close();
    if (!out) throw Error("io", "failed writing " + tmp.string());
  });
}

void write_dir_atomic(const fs::path& dir, const std::function<void(const fs::path&)>& fill) {
  ensure_parent(dir);
  const fs::path tmp = temp_sibling_path(dir);
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp);
  try {
    fill(tmp);
    fsync_tree(tmp);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  replace_dir(tmp, dir);
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("io", "cannot open " + path.string() + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace tailor
