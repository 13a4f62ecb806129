// Sharded checkpoints: every rank writes the pieces of tensors it owns; one manifest says what
// is where, so a checkpoint saved at one world size can be read back at any other.
//
//   run_dir/checkpoints/step_00000050/
//     manifest.json                      format "tailor-sharded-v1", world_size, step, the tensor
//                                        table {name: {dtype, shape, kind}}, and per shard file
//                                        the pieces it holds {tensor, offset, length}
//     shard_00000-of-00004.safetensors   rank 0's pieces, each a 1-D tensor named
//     ...                                "<tensor>@<offset>" (elements of the tensor's row-major
//                                        flattening, [offset, offset + length))
//     trainer_state.json                 TrainerState (step, data position, recipe hash, extra);
//                                        rng holds {"ranks": [rank 0's states, ...]}
//   run_dir/checkpoints/latest
//
// Atomicity: rank 0 creates a temporary directory, every rank writes its shard file into it
// (each file atomically), a barrier, then rank 0 writes the manifest and trainer state, renames
// the directory into place and updates `latest` (same protocol as train/checkpoint/checkpoint.h). A
// job killed at any point leaves the previous checkpoint loadable. Ranks must share the filesystem.
//
// The reader also opens the single-process layout of train/checkpoint/checkpoint.h
// (model.safetensors + optimizer.safetensors), as one shard holding every tensor whole, so a
// world-size-1 run can be resumed on N ranks.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/Tensor.h>
#include <c10/core/ScalarType.h>
#include <nlohmann/json.hpp>

#include "dist/communicator.h"
#include "train/checkpoint/checkpoint.h"

namespace tailor::dist {

// What a tensor is for: "model" (parameters, HF names) or "optimizer" (AdamW state names,
// "<param>.exp_avg", ...; see train/optim/adamw.h). Export reads only "model" tensors.
struct TensorInfo {
  std::string name;
  at::ScalarType dtype = at::kFloat;
  std::vector<int64_t> shape;
  std::string kind = "model";
  int64_t numel() const;
};

// A contiguous range of one tensor's row-major elements held by this rank:
// data is 1-D with `length` elements, dtype = the tensor's.
struct ShardPiece {
  std::string tensor;
  int64_t offset = 0;
  at::Tensor data;
};

struct SaveShardedOptions {
  int keep_last = 0;  // as SaveCheckpointOptions::keep_last
};

// Collective: every rank calls it with the same `tensors` table (names unique) and `state`
// (apart from state.rng, which is this rank's own and is gathered into {"ranks": [...]}); each
// passes its own pieces. The pieces of all ranks must cover every element of every tensor
// exactly once: checked on rank 0 before anything is committed (Error("checkpoint", ...) naming
// the tensor and the gap/overlap). Returns the checkpoint directory.
std::filesystem::path save_sharded_checkpoint(Communicator& comm,
                                              const std::filesystem::path& run_dir,
                                              const std::vector<TensorInfo>& tensors,
                                              const std::vector<ShardPiece>& pieces,
                                              const TrainerState& state,
                                              const SaveShardedOptions& options = {});

// Reads any range of any tensor from a sharded (or single-process) checkpoint directory,
// memory-mapping shard files as needed; never loads more than what is asked for.
class ShardedCheckpointReader {
 public:
  explicit ShardedCheckpointReader(const std::filesystem::path& checkpoint_dir);
  ~ShardedCheckpointReader();
  ShardedCheckpointReader(ShardedCheckpointReader&&) noexcept;
  ShardedCheckpointReader& operator=(ShardedCheckpointReader&&) noexcept;

  const std::filesystem::path& dir() const;
  int world_size() const;  // of the run that saved it (1 for the single-process layout)
  bool sharded() const;    // false for the single-process layout
  const TrainerState& state() const;
  const std::vector<TensorInfo>& tensors() const;  // in manifest order
  const TensorInfo* find(const std::string& name) const;

  // Elements [offset, offset + length) of `name` as a new 1-D tensor (its dtype). Throws
  // Error("checkpoint", ...) naming the file and tensor when it is unknown, out of range or
  // not fully covered.
  at::Tensor read_range(const std::string& name, int64_t offset, int64_t length) const;
  // The whole tensor with its shape.
  at::Tensor read(const std::string& name) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Whether `checkpoint_dir` holds a manifest.json (sharded) rather than model.safetensors.
bool is_sharded_checkpoint(const std::filesystem::path& checkpoint_dir);

// ---- Building blocks of save_sharded_checkpoint ------------------------------------------------
// The collective save is these steps with collectives in between; they are exposed so a test can
// play ranks 0..N-1 in one process (and stop anywhere, as a killed job would).
//
//   rank 0:        tmp = prepare_sharded_temp_dir(run_dir, step)
//   every rank r:  report_r = write_rank_shard(tmp, r, N, tensors, pieces_r, rng_r)
//   rank 0:        commit_sharded_checkpoint(run_dir, tmp, tensors, {report_0, ...}, state)

// run_dir/checkpoints/.tmp_step_<N>: named from the step alone, so every rank knows it.
std::filesystem::path sharded_temp_dir(const std::filesystem::path& run_dir, int64_t step);

// "shard_00001-of-00004.safetensors" (rank 1 of 4).
std::string shard_file_name(int rank, int world_size);

// Rank 0, first: removes leftovers of interrupted sharded saves (.tmp_step_* directories) and
// creates an empty sharded_temp_dir(run_dir, step); returns it.
std::filesystem::path prepare_sharded_temp_dir(const std::filesystem::path& run_dir, int64_t step);

// Every rank: checks its pieces against the table (known tensor, same dtype, 1-D, inside the
// tensor, no piece given twice), writes them as tmp_dir/shard_file_name(rank, world_size)
// (atomically), and returns this rank's report for rank 0: a JSON string with the pieces
// {tensor, offset, length}, `rng` and a digest of the table. Throws Error("checkpoint", ...).
std::string write_rank_shard(const std::filesystem::path& tmp_dir, int rank, int world_size,
                             const std::vector<TensorInfo>& tensors,
                             const std::vector<ShardPiece>& pieces, const nlohmann::json& rng);

// The report of a rank whose write_rank_shard threw, so rank 0 fails the save naming it.
std::string failed_rank_report(int rank, const std::string& message);

// Rank 0, last: validates the reports (one per rank, in rank order: no failed rank, the same
// table everywhere, every shard file present, every element of every tensor covered exactly
// once), then writes manifest.json and trainer_state.json (state.rng replaced by
// {"ranks": [each report's rng]}) into tmp_dir, renames it to checkpoints/step_<state.step>
// (replacing one of the same step), updates `latest` and prunes (publish_checkpoint). On a
// validation error nothing is committed and Error("checkpoint", ...) names the tensor and the
// elements missing or held twice (and by which ranks). Returns the checkpoint directory.
std::filesystem::path commit_sharded_checkpoint(const std::filesystem::path& run_dir,
                                                const std::filesystem::path& tmp_dir,
                                                const std::vector<TensorInfo>& tensors,
                                                const std::vector<std::string>& reports,
                                                const TrainerState& state,
                                                const SaveShardedOptions& options = {});

}  // namespace tailor::dist
