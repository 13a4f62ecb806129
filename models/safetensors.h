// The safetensors format (https://github.com/huggingface/safetensors), our own reader and writer.
//
// Layout: u64 little-endian header length N, N bytes of JSON header (padded with spaces to a
// multiple of 8 by writers), then the data buffer. Each header entry is
// {"dtype", "shape", "data_offsets": [begin, end)} relative to the data buffer; entries must
// tile the buffer with no holes or overlaps. "__metadata__" is an optional string->string map.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/tensor_map.h"

namespace tailor::safetensors {

struct TensorInfo {
  std::string dtype;           // "F32", "BF16", "I64", ... as in the file
  std::vector<int64_t> shape;  // [] for a scalar
  uint64_t begin = 0;          // byte offsets relative to the data buffer
  uint64_t end = 0;
};

// Opens a file with mmap and validates the header (sizes, offsets, dtypes) up front; corrupt or
// truncated files throw tailor::Error("safetensors", "<path>: <what is wrong>").
// Tensor data is copied only when `tensor(name)` is called.
class Reader {
 public:
  explicit Reader(const std::filesystem::path& file);
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  const std::filesystem::path& path() const;
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // throws naming the missing key
  // A CPU tensor owning its memory (one memcpy from the mapping). Dtypes of the spec that
  // LibTorch 1.13 lacks (U16 U32 U64 F8_E4M3 F8_E5M2) open fine but throw here; dtype names
  // outside the spec make the constructor throw, since their sizes cannot be validated.
  at::Tensor tensor(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads every tensor of one file.
TensorMap load(const std::filesystem::path& file);

// Writes tensors (any device; contiguous copies are made as needed) atomically.
// Supported dtypes: F32 F16 BF16 F64 I64 I32 I16 I8 U8 BOOL.
void save(const std::filesystem::path& file, const TensorMap& tensors,
          const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace tailor::safetensors
