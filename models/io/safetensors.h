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
#include <utility>
#include <vector>

#include <c10/core/ScalarType.h>

#include "models/core/tensor_map.h"

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
  // The tensor's bytes inside the mapping (info(name).end - begin of them), valid while the
  // Reader lives: for callers that copy only part of a tensor (sharded checkpoints).
  const uint8_t* data(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The spec's name of a LibTorch dtype ("F32", "BF16", "I64", ...); throws
// Error("safetensors", ...) for dtypes the writer does not support.
std::string dtype_name(at::ScalarType type);
// The LibTorch dtype of a spec name; throws for unknown names and for those LibTorch 1.13 lacks.
at::ScalarType scalar_type_of(const std::string& dtype);

// One tensor of a header, in the order its data is laid out.
struct HeaderEntry {
  std::string name;
  at::ScalarType dtype = at::kFloat;
  std::vector<int64_t> shape;
};

// Everything before the data buffer, byte for byte as save() writes it: u64 little-endian
// length, the JSON header (keys sorted, as save() emits them), space-padded to a multiple of 8.
// Data offsets follow the order of `entries` (save() passes them in name order). `offsets`, when
// given, receives each entry's [begin, end) in the data buffer. `file` names errors.
std::string encode_header(const std::vector<HeaderEntry>& entries,
                          const std::map<std::string, std::string>& metadata,
                          const std::filesystem::path& file,
                          std::vector<std::pair<uint64_t, uint64_t>>* offsets = nullptr);

// Reads every tensor of one file.
TensorMap load(const std::filesystem::path& file);

// Writes tensors (any device; contiguous copies are made as needed) atomically.
// Supported dtypes: F32 F16 BF16 F64 I64 I32 I16 I8 U8 BOOL.
void save(const std::filesystem::path& file, const TensorMap& tensors,
          const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace tailor::safetensors
