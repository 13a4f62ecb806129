// What a training checkpoint records about its model, so that `tailor export` and resumed runs
// can rebuild it without the recipe: the model's config.json, the LoRA config, where the frozen
// base weights come from, and the tokenizer. Stored under "model" in trainer_state.json's `extra`.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "models/core/causal_lm.h"
#include "models/core/lora.h"

namespace tailor {

struct ModelProvenance {
  nlohmann::json config;  // the model's config.json (model_type picks the family)
  std::optional<LoraConfig> lora;
  // HF directory of the frozen base weights when the checkpoint holds only trainable tensors
  // (LoRA on a pretrained base); empty when model.safetensors holds every weight.
  std::filesystem::path base_model;
  std::filesystem::path tokenizer;
  std::string dtype;  // "float32" | "bfloat16"
};

nlohmann::json provenance_to_json(const ModelProvenance& provenance);
ModelProvenance provenance_from_json(const nlohmann::json& json, const std::string& source);

// Rebuilds the trained model of a checkpoint directory (base weights + LoRA factors); either
// layout, single-process or sharded (dist/sharded_checkpoint.h).
CausalLM model_from_checkpoint(const std::filesystem::path& checkpoint_dir,
                               ModelProvenance* provenance = nullptr);

// A run directory resolves to its latest checkpoint; a checkpoint directory to itself.
std::filesystem::path resolve_checkpoint_dir(const std::filesystem::path& run_or_checkpoint);

// Writes a Hugging Face export of a trained model into `out`: config.json, safetensors and
// tokenizer files, plus for LoRA models either a PEFT adapter in out/adapter (the base stays
// unmerged in out/) or, with `merge_lora`, the merged weights in out/ and no adapter.
void export_model(CausalLMImpl& model, const ModelProvenance& provenance,
                  const std::filesystem::path& out, bool merged);

}  // namespace tailor
