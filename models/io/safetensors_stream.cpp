#include "models/io/safetensors_stream.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <ATen/ATen.h>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/shape_string.h"

namespace tailor::safetensors {
namespace fs = std::filesystem;

namespace {

// pwrite until done (it may write less than asked).
bool write_all(int fd, const void* data, uint64_t nbytes, uint64_t offset) {
  const char* p = static_cast<const char*>(data);
  while (nbytes > 0) {
    const ssize_t n = ::pwrite(fd, p, nbytes, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += n;
    nbytes -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

}  // namespace

void StreamWriter::fail(const std::string& what) const {
  throw Error("safetensors", file_.string() + ": " + what);
}

StreamWriter::StreamWriter(const fs::path& file, std::vector<HeaderEntry> entries,
                           const std::map<std::string, std::string>& metadata)
    : file_(file) {
  // save() lays data out in TensorMap (name) order; so do we.
  std::sort(entries.begin(), entries.end(),
            [](const HeaderEntry& a, const HeaderEntry& b) { return a.name < b.name; });
  std::vector<std::pair<uint64_t, uint64_t>> offsets;
  const std::string header = encode_header(entries, metadata, file, &offsets);
  for (size_t i = 0; i < entries.size(); ++i) {
    Slot slot;
    slot.begin = header.size() + offsets[i].first;
    slot.nbytes = offsets[i].second - offsets[i].first;
    slot.entry = entries[i];
    order_.push_back(entries[i].name);
    slots_.emplace(entries[i].name, std::move(slot));
  }

  if (file.has_parent_path()) fs::create_directories(file.parent_path());
  tmp_ = temp_sibling_path(file);
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot open " + tmp_.string() + " for writing: " + std::strerror(errno));
  if (!write_all(fd_, header.data(), header.size(), 0))
    fail("failed writing the header to " + tmp_.string() + ": " + std::strerror(errno));
}

StreamWriter::~StreamWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!finished_ && !tmp_.empty()) {
    std::error_code ec;
    fs::remove(tmp_, ec);
  }
}

void StreamWriter::write(const std::string& name, const at::Tensor& tensor) {
  if (finished_) fail("write(\"" + name + "\") after finish()");
  auto it = slots_.find(name);
  if (it == slots_.end()) fail("tensor \"" + name + "\" was not declared");
  Slot& slot = it->second;
  if (slot.written) fail("tensor \"" + name + "\" is written twice");
  if (!tensor.defined()) fail("tensor \"" + name + "\" is undefined");
  if (tensor.scalar_type() != slot.entry.dtype)
    fail("tensor \"" + name + "\" has dtype " + std::string(c10::toString(tensor.scalar_type())) +
         ", declared " + c10::toString(slot.entry.dtype));
  if (tensor.sizes().vec() != slot.entry.shape)
    fail("tensor \"" + name + "\" has shape " + shape_string(tensor.sizes()) + ", declared " +
         shape_string(slot.entry.shape));
  const at::Tensor cpu = tensor.detach().to(at::kCPU).contiguous();
  if (slot.nbytes > 0 && !write_all(fd_, cpu.data_ptr(), slot.nbytes, slot.begin))
    fail("failed writing tensor \"" + name + "\" to " + tmp_.string() + ": " +
         std::strerror(errno));
  slot.written = true;
}

void StreamWriter::finish() {
  if (finished_) return;
  for (const auto& name : order_)
    if (!slots_.at(name).written) fail("tensor \"" + name + "\" was declared but never written");
  // Flush to disk before the rename, as write_atomic_with does.
  if (::fsync(fd_) != 0) fail("fsync of " + tmp_.string() + " failed: " + std::strerror(errno));
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) fail("closing " + tmp_.string() + " failed: " + std::strerror(errno));
  std::error_code ec;
  fs::rename(tmp_, file_, ec);
  if (ec) fail("cannot rename " + tmp_.string() + " into place: " + ec.message());
  finished_ = true;
}

}  // namespace tailor::safetensors
