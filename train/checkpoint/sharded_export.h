// `tailor export` for checkpoints too large for one process: writes the same Hugging Face
// directory as export_model(model_from_checkpoint(dir), ...) (config.json, model safetensors,
// sharded with an index above max_shard_bytes, tokenizer files, and for LoRA either a PEFT
// adapter in out/adapter or merged weights), but reads one tensor at a time through
// dist::ShardedCheckpointReader and writes it through safetensors::StreamWriter. At most one
// tensor is held at once, or for a merged LoRA module its base weight and both factors.
// Works on sharded and single-process checkpoint directories alike.
#pragma once

#include <cstdint>
#include <filesystem>

#include "train/checkpoint/model_checkpoint.h"

namespace tailor {

// Throws Error("checkpoint"/"export", ...) naming the tensor when the checkpoint does not hold
// exactly the model its provenance (trainer_state.json extra.model) describes. `out` is replaced
// whole, atomically. `provenance`, when given, receives the checkpoint's provenance.
void export_checkpoint_streaming(const std::filesystem::path& checkpoint_dir,
                                 const std::filesystem::path& out, bool merged,
                                 ModelProvenance* provenance = nullptr,
                                 uint64_t max_shard_bytes = 5'000'000'000ULL);

}  // namespace tailor
