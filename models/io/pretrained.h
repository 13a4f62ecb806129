// Hugging Face directories on disk: a GPT-2 model directory (config.json + safetensors, single
// or sharded, + tokenizer files) and a PEFT adapter directory (adapter_config.json +
// adapter_model.safetensors). The in-memory mappings live in gpt2.h and peft.h; this file only
// joins them to the files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include <c10/core/ScalarType.h>
#include <nlohmann/json.hpp>

#include "models/core/lora.h"
#include "models/gpt2/gpt2.h"

namespace tailor {

// Reads config.json and the weights of a GPT-2 model directory into a new model of `dtype`.
GPT2LMHead load_gpt2_pretrained(const std::filesystem::path& dir,
                                c10::ScalarType dtype = c10::ScalarType::Float);

// Writes config.json and the base weights (model.safetensors, or shards + index above
// `max_shard_bytes`), each file atomically. LoRA factors are not written: merge first for a
// merged export, or save the adapter separately.
void save_gpt2_pretrained(const std::filesystem::path& dir, const GPT2LMHead& model,
                          uint64_t max_shard_bytes = 5'000'000'000ULL);

// Writes config.json for a model of `config` whose weights are `dtype` (its torch_dtype).
// `extra_fields` (a JSON object) are added to or replace the config's keys, e.g. the
// architectures / id2label / pad_token_id of a sequence-classification export.
void save_gpt2_config(const std::filesystem::path& dir, GPT2Config config, c10::ScalarType dtype,
                      const nlohmann::json& extra_fields = nlohmann::json::object());

// Writes adapter_config.json and adapter_model.safetensors for the model's LoRA factors.
void save_peft_adapter(const std::filesystem::path& dir, const torch::nn::Module& model,
                       const LoraConfig& config, const std::string& base_model_name_or_path,
                       bool fan_in_fan_out);

// Writes only adapter_config.json (save_peft_adapter's first half, for streaming exporters).
void save_peft_adapter_config(const std::filesystem::path& dir, const LoraConfig& config,
                              const std::string& base_model_name_or_path, bool fan_in_fan_out);

// Applies the adapter in `dir` to `model` (adds LoRA layers when the model has none) and returns
// its configuration.
LoraConfig load_peft_adapter(const std::filesystem::path& dir, torch::nn::Module& model);

}  // namespace tailor
