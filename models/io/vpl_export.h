// Export of a trained VPL reward model: out/backbone is a Hugging Face model directory (with a
// PEFT adapter in out/backbone/adapter for LoRA runs unless merged, as
// train/checkpoint/model_checkpoint.h exports), out/vpl_heads.safetensors the pair encoder,
// sequence encoder and decoder weights under their module names (pair_encoder.0.weight, q.weight,
// ..., decoder.4.bias), and out/vpl_config.json their sizes. load_vpl_export reads it back.
#pragma once

#include <filesystem>
#include <optional>
#include <utility>

#include "models/core/causal_lm.h"
#include "models/core/lora.h"
#include "models/heads/vpl.h"

namespace tailor {

// `lora`: the adapter config the backbone was trained with (nullopt = full fine-tune).
void save_vpl_export(const std::filesystem::path& out, CausalLMImpl& backbone, VplHeads& heads,
                     const std::optional<LoraConfig>& lora, bool merged,
                     const std::filesystem::path& tokenizer_dir);

std::pair<CausalLM, VplHeads> load_vpl_export(const std::filesystem::path& dir);

}  // namespace tailor
