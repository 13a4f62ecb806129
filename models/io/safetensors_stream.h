// A safetensors writer that never holds more than one tensor: the caller declares every entry
// (name, dtype, shape) up front, the header is written at once, then tensors arrive one at a
// time. The file is written to a temporary sibling and renamed into place by finish(), so it is
// byte for byte what safetensors::save writes for the same tensors (same header, data in name
// order) and, like save, never seen half-written.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <ATen/Tensor.h>

#include "models/io/safetensors.h"

namespace tailor::safetensors {

class StreamWriter {
 public:
  // Throws Error("safetensors", "<file>: ...") for duplicate names or unsupported dtypes, or when
  // the temporary file cannot be created.
  StreamWriter(const std::filesystem::path& file, std::vector<HeaderEntry> entries,
               const std::map<std::string, std::string>& metadata = {{"format", "pt"}});
  // Removes the temporary file unless finish() succeeded.
  ~StreamWriter();
  StreamWriter(const StreamWriter&) = delete;
  StreamWriter& operator=(const StreamWriter&) = delete;

  // Entry names in the order their data is laid out (sorted, as save() lays them out); write()
  // in this order streams the file front to back.
  const std::vector<std::string>& order() const { return order_; }

  // Writes one declared tensor (any device; its dtype and shape must be the declared ones).
  // Tensors may come in any order; each exactly once.
  void write(const std::string& name, const at::Tensor& tensor);

  // Checks that every entry was written, flushes to disk and renames the file into place.
  void finish();

  const std::filesystem::path& path() const { return file_; }

 private:
  struct Slot {
    HeaderEntry entry;
    uint64_t begin = 0;  // byte offset of the data in the file
    uint64_t nbytes = 0;
    bool written = false;
  };

  [[noreturn]] void fail(const std::string& what) const;

  std::filesystem::path file_;
  std::filesystem::path tmp_;
  int fd_ = -1;
  bool finished_ = false;
  std::map<std::string, Slot> slots_;
  std::vector<std::string> order_;
};

}  // namespace tailor::safetensors
