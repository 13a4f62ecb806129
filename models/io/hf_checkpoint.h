// Hugging Face checkpoint directories: `model.safetensors`, or
// `model-0000i-of-0000N.safetensors` shards + `model.safetensors.index.json`
// ({"metadata": {"total_size": bytes}, "weight_map": {name: file}}).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/core/tensor_map.h"
#include "models/io/safetensors.h"

namespace tailor::hf {

// Streams tensors of a checkpoint directory one at a time (single file or sharded), so that
// exporters and loaders never need the whole model in memory twice.
class CheckpointReader {
 public:
  // `basename` is "model" for model.safetensors / model.safetensors.index.json.
  explicit CheckpointReader(const std::filesystem::path& dir,
                            const std::string& basename = "model");
  ~CheckpointReader();
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const;
  at::Tensor tensor(const std::string& name) const;
  // The tensor's bytes inside its file's mapping, valid while the reader lives.
  const uint8_t* data(const std::string& name) const;
  // dtype and shape without reading the data.
  const safetensors::TensorInfo& info(const std::string& name) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Every tensor of a checkpoint directory as a READ-ONLY view into the memory-mapped files (no
// copy; the mapping lives as long as any returned tensor). Loading a model from it costs no
// memory beyond the model itself and the page cache, which is what lets a 14.5 GB bf16 checkpoint
// load into a 14.5 GB model on a 24 GiB machine. Writing into a returned tensor is a crash.
// Tensors whose bytes are not aligned to their element size are copied instead.
TensorMap map_state_dict(const std::filesystem::path& dir, const std::string& basename = "model");

// Drops the pages of a tensor from map_state_dict out of this process once its bytes have been
// copied: a mapped page read stays resident (and counted in RSS) until the mapping goes, so a
// loader that releases each tensor after copying it peaks at the model, not the model plus the
// files. The tensor must not be read again (it would be read from the file, or, for one of the
// copied misaligned tensors, be zeros).
void release_mapped(const at::Tensor& tensor);

// Loads every tensor of a checkpoint directory (copies).
TensorMap load_state_dict(const std::filesystem::path& dir, const std::string& basename = "model");

// Writes `<basename>.safetensors`, or, when the total exceeds `max_shard_bytes`, shards
// `<basename>-00001-of-0000N.safetensors` plus `<basename>.safetensors.index.json`.
// Each file is written atomically; stale files of the other layout are removed.
void save_state_dict(const std::filesystem::path& dir, const TensorMap& tensors,
                     uint64_t max_shard_bytes = 5'000'000'000ULL,
                     const std::string& basename = "model");

// The file layout save_state_dict uses, for writers that stream tensors one at a time
// (train/checkpoint/sharded_export.h): greedy packing in name order as transformers'
// `shard_checkpoint`.
struct StateDictFile {
  std::string filename;            // "model.safetensors" or "model-00001-of-00003.safetensors"
  std::vector<std::string> names;  // sorted
};
struct StateDictLayout {
  std::vector<StateDictFile> files;  // one file means no index
  uint64_t total_bytes = 0;
};
StateDictLayout plan_state_dict(const std::map<std::string, uint64_t>& bytes_by_name,
                                uint64_t max_shard_bytes = 5'000'000'000ULL,
                                const std::string& basename = "model");
// After every file of `layout` is written into `dir`: writes the index when there are several
// files and removes files of the other layout (stale shards, index or single file).
void finish_state_dict(const std::filesystem::path& dir, const StateDictLayout& layout,
                       const std::string& basename = "model");

}  // namespace tailor::hf
