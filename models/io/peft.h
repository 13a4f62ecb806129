// PEFT LoRA adapters (https://github.com/huggingface/peft): adapter_config.json fields and the
// tensors of adapter_model.safetensors, keyed `base_model.model.<module path>.lora_A.weight`
// [r, in] and `.lora_B.weight` [out, r]. File I/O lives with the checkpoint code; this is the
// in-memory mapping.
#pragma once

#include <string>

#include <torch/nn/module.h>
#include <nlohmann/json.hpp>

#include "models/core/lora.h"
#include "models/core/tensor_map.h"

namespace tailor {

// Prefix PEFT's PeftModel puts in front of the base model's parameter names.
inline constexpr const char* kPeftPrefix = "base_model.model.";

// adapter_config.json: peft_type "LORA", r, lora_alpha, lora_dropout, target_modules, bias
// "none", fan_in_fan_out (true for GPT-2's Conv1D), use_rslora, inference_mode true,
// modules_to_save null, task_type ("CAUSAL_LM" or "SEQ_CLS"), base_model_name_or_path.
nlohmann::json peft_adapter_config(const LoraConfig& config,
                                   const std::string& base_model_name_or_path, bool fan_in_fan_out,
                                   const std::string& task_type = "CAUSAL_LM");

// Reads an adapter_config.json. Options that change the computation and that tailor lacks
// (DoRA, per-layer rank/alpha patterns, layers_to_transform, a regex target_modules string,
// bias other than "none") are errors naming the key; `source_name` prefixes every message.
LoraConfig lora_config_from_peft(const nlohmann::json& json,
                                 const std::string& source_name = "adapter_config.json");

// The model's LoRA factors under PEFT names (detached views, not copies).
TensorMap peft_adapter_tensors(const torch::nn::Module& model);

// Loads PEFT adapter tensors (keys with or without the `base_model.model.` prefix). Applies
// LoRA with `config` first when the model has none; otherwise the existing adapters are
// overwritten. Missing keys, unexpected keys and shape mismatches throw Error("peft", ...)
// naming the key. Tensors are converted to the parameters' dtype.
void load_peft_adapter_tensors(torch::nn::Module& model, const TensorMap& tensors,
                               const LoraConfig& config,
                               const std::string& source_name = "adapter_model.safetensors");

}  // namespace tailor
