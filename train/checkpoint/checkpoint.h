// Training checkpoints: one directory per saved step,
//   run_dir/checkpoints/step_00000050/
//     model.safetensors       parameters the run needs to continue (HF names)
//     optimizer.safetensors   AdamW::export_state()
//     trainer_state.json      TrainerState (step, data position, RNG states, recipe hash, extra)
//     ...                     anything SaveCheckpointOptions::write_extra adds
//   run_dir/checkpoints/latest   text file naming the newest complete directory
// A directory is written to a temporary sibling and renamed into place when complete
// (write_dir_atomic); `latest` is then replaced atomically, and only after that are older
// checkpoints pruned. A process killed at any point leaves the previous checkpoint usable.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/core/tensor_map.h"

namespace tailor {

struct TrainerState {
  int64_t step = 0;             // optimizer steps completed
  int64_t epoch = 0;            // data epoch the next batch comes from
  int64_t sample_position = 0;  // samples of that epoch already consumed
  std::string recipe_hash;      // of the resolved recipe, to refuse resuming a different run
  nlohmann::json rng;    // capture_torch_rng_states() plus sampler states, as the caller likes
  nlohmann::json extra;  // anything else the caller wants back on resume
};

nlohmann::json trainer_state_to_json(const TrainerState& state);
// `source` names the file in error messages.
TrainerState trainer_state_from_json(const nlohmann::json& json, const std::string& source);

struct Checkpoint {
  std::filesystem::path dir;
  TensorMap model;
  TensorMap optimizer;
  TrainerState state;
};

struct SaveCheckpointOptions {
  int keep_last = 0;  // after saving, keep only the newest N checkpoints; <= 0 keeps all
  // Writes extra files into the (temporary) checkpoint directory before it is committed, e.g.
  // the resolved recipe or an adapter config. An exception aborts the save and leaves the
  // previous checkpoint and `latest` untouched.
  std::function<void(const std::filesystem::path& tmp_dir)> write_extra;
};

// "step_00000050" (at least 8 digits).
std::string checkpoint_dir_name(int64_t step);
std::filesystem::path checkpoints_root(
    const std::filesystem::path& run_dir);  // run_dir/checkpoints

// Writes run_dir/checkpoints/step_<state.step>/ and points `latest` at it; returns its path.
// An existing directory for the same step is replaced whole.
std::filesystem::path save_checkpoint(const std::filesystem::path& run_dir, const TensorMap& model,
                                      const TensorMap& optimizer, const TrainerState& state,
                                      const SaveCheckpointOptions& options = {});

// The end of every save, single-process or sharded (train/checkpoint/sharded_checkpoint.h): points
// `latest` at the complete directory run_dir/checkpoints/<name>, then removes leftovers of dead
// saves and, with keep_last > 0, all but the newest keep_last checkpoints (never <name> itself).
void publish_checkpoint(const std::filesystem::path& run_dir, const std::string& name,
                        int keep_last);

// Reads a checkpoint directory; missing or corrupt files throw tailor::Error("checkpoint", ...).
Checkpoint load_checkpoint(const std::filesystem::path& checkpoint_dir);

// Complete checkpoint directories (all three files present, or trainer_state.json and the
// manifest.json of a sharded checkpoint) under run_dir/checkpoints, by
// ascending step. Temporary directories of interrupted saves are ignored.
std::vector<std::filesystem::path> list_checkpoints(const std::filesystem::path& run_dir);

// The directory named by `latest` when that names a complete checkpoint; otherwise (missing or
// corrupt `latest`) the complete checkpoint with the highest step; nullopt when there is none.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& run_dir);

}  // namespace tailor
