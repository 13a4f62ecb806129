// Reading a training checkpoint's model back: the provenance recorded under "model" in
// trainer_state.json's `extra` (models/io/model_export.h) and the tensors, in either layout.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "models/core/causal_lm.h"
#include "models/io/model_export.h"

namespace tailor {

// Rebuilds the trained model of a checkpoint directory (base weights + LoRA factors); either
// layout, single-process or sharded (train/checkpoint/sharded_checkpoint.h).
CausalLM model_from_checkpoint(const std::filesystem::path& checkpoint_dir,
                               ModelProvenance* provenance = nullptr);

// A run directory resolves to its latest checkpoint; a checkpoint directory to itself.
std::filesystem::path resolve_checkpoint_dir(const std::filesystem::path& run_or_checkpoint);

}  // namespace tailor
