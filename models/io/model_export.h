// What a trained model records about itself, so that `tailor export` and resumed runs can rebuild
// it without the recipe (the model's config.json, the LoRA config, where the frozen base weights
// come from, and the tokenizer; training checkpoints store it under "model" in
// trainer_state.json's `extra`), and the Hugging Face export of such a model.
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
  std::string dtype;  // dtype_name(): "float32" | "bfloat16" | "float64"
};

nlohmann::json provenance_to_json(const ModelProvenance& provenance);
// ModelProvenance::dtype's names: "float32", "bfloat16", "float64".
std::string dtype_name(c10::ScalarType dtype);
// The dtype of such a name ("float32" for anything else, as older checkpoints wrote only two).
c10::ScalarType dtype_from_name(const std::string& name);
ModelProvenance provenance_from_json(const nlohmann::json& json, const std::string& source);

// Writes a Hugging Face export of a trained model into `out`: config.json, safetensors and
// tokenizer files, plus for LoRA models either a PEFT adapter in out/adapter (the base stays
// unmerged in out/) or, with `merge_lora`, the merged weights in out/ and no adapter.
void export_model(CausalLMImpl& model, const ModelProvenance& provenance,
                  const std::filesystem::path& out, bool merged);

}  // namespace tailor
