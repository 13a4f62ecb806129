// Hugging Face directories on disk: a model directory (config.json + safetensors, single or
// sharded, + tokenizer files) for any causal LM of models/registry.h, and a PEFT adapter directory
// (adapter_config.json + adapter_model.safetensors). The in-memory mappings live in the models
// and in peft.h; this file only joins them to the files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include <c10/core/ScalarType.h>
#include <nlohmann/json.hpp>

#include "models/core/causal_lm.h"
#include "models/core/lora.h"

namespace tailor {

class AdapterBank;

// DIR/config.json, parsed; errors name the file.
nlohmann::json read_model_config(const std::filesystem::path& dir);

// The dtype a model directory was saved in, as its config.json says (`torch_dtype`, or `dtype`
// from newer transformers): bfloat16 stays bfloat16; anything else, or no entry, is float32
// (float16 widens exactly to float32, and fp16 arithmetic is slow or missing on CPUs). A missing
// config.json is float32 here (the loader names the problem); one that is not JSON is an error.
c10::ScalarType saved_dtype(const std::filesystem::path& dir);

// Makes a freshly built model (causal_lm_from_config, weights about to be loaded) `dtype`: every
// parameter is re-allocated in `dtype` without reading the one the constructor made, then the
// buffers are converted. Converting the parameters instead (model->to) reads the float32 ones and
// so makes them resident: for a bf16 checkpoint, a peak of three times its size for a moment.
// Every parameter must be overwritten afterwards (the loaders' strict key check ensures it).
void prepare_for_load(CausalLMImpl& model, c10::ScalarType dtype);

// Reads config.json (its model_type picks the family) and the weights (any floating dtype on
// disk) of a model directory into a new model of `dtype`.
CausalLM load_pretrained(const std::filesystem::path& dir,
                         c10::ScalarType dtype = c10::ScalarType::Float);

// Reads the weights of a model directory (model.safetensors or an index and its shards) into
// `model`'s base parameters, converting to their dtype. The files are read through a mapping and
// each tensor's pages are dropped once copied, so the process holds the model and not the model
// plus the files (for Mistral-7B in bf16, 15 GB instead of 22 GB of peak RSS).
void load_pretrained_weights(CausalLMImpl& model, const std::filesystem::path& dir);

// Writes config.json and the base weights (model.safetensors, or shards + index above
// `max_shard_bytes`), each file atomically. LoRA factors are not written: merge first for a
// merged export, or save the adapter separately.
void save_pretrained(const std::filesystem::path& dir, const CausalLMImpl& model,
                     uint64_t max_shard_bytes = 5'000'000'000ULL);

// Writes config.json: `config` (a model's hf_config) with torch_dtype set for weights of `dtype`
// and `extra_fields` (a JSON object) added or replacing keys, e.g. the architectures / id2label /
// pad_token_id of a sequence-classification export.
void save_model_config(const std::filesystem::path& dir, nlohmann::json config,
                       c10::ScalarType dtype,
                       const nlohmann::json& extra_fields = nlohmann::json::object());

// Copies the tokenizer of `tokenizer_dir` into `out`: a tokenizer.json directory's files as they
// are (tokenizer.json, tokenizer_config.json, special_tokens_map.json), or vocab.json +
// merges.txt + tokenizer_config.json (Tokenizer::save) otherwise.
void save_tokenizer_files(const std::filesystem::path& tokenizer_dir,
                          const std::filesystem::path& out);

// Writes adapter_config.json and adapter_model.safetensors for the model's LoRA factors.
void save_peft_adapter(const std::filesystem::path& dir, const torch::nn::Module& model,
                       const LoraConfig& config, const std::string& base_model_name_or_path,
                       bool fan_in_fan_out);

// Writes one user's adapter of a bank (models/core/adapter_bank.h) as a PEFT adapter directory,
// exactly as save_peft_adapter writes a model carrying that adapter alone.
void save_user_peft_adapter(const std::filesystem::path& dir, const AdapterBank& bank,
                            const std::string& user, const LoraConfig& config,
                            const std::string& base_model_name_or_path, bool fan_in_fan_out);

// Writes only adapter_config.json (save_peft_adapter's first half, for streaming exporters).
void save_peft_adapter_config(const std::filesystem::path& dir, const LoraConfig& config,
                              const std::string& base_model_name_or_path, bool fan_in_fan_out);

// Applies the adapter in `dir` to `model` (adds LoRA layers when the model has none) and returns
// its configuration.
LoraConfig load_peft_adapter(const std::filesystem::path& dir, torch::nn::Module& model);

}  // namespace tailor
