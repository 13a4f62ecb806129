#include "models/io/pretrained.h"

#include "models/core/adapter_bank.h"

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "models/io/hf_checkpoint.h"
#include "models/io/peft.h"
#include "models/io/safetensors.h"
#include "models/registry.h"
#include "models/tokenizer/tokenizer.h"

namespace tailor {
namespace fs = std::filesystem;

namespace {

nlohmann::json read_json(const fs::path& path, const std::string& scope) {
  if (!fs::exists(path)) throw Error(scope, path.string() + ": file not found");
  try {
    return nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(scope, path.string() + ": invalid JSON: " + e.what());
  }
}

}  // namespace

nlohmann::json read_model_config(const fs::path& dir) {
  return read_json(dir / "config.json", "pretrained");
}

c10::ScalarType saved_dtype(const fs::path& dir) {
  if (!fs::is_regular_file(dir / "config.json")) return at::kFloat;
  const nlohmann::json config = read_model_config(dir);
  for (const char* key : {"torch_dtype", "dtype"})
    if (config.contains(key) && config[key].is_string())
      return config[key].get<std::string>() == "bfloat16" ? at::kBFloat16 : at::kFloat;
  return at::kFloat;
}

void prepare_for_load(CausalLMImpl& model, c10::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  for (auto& p : model.parameters())
    if (p.scalar_type() != dtype) p.set_data(at::empty(p.sizes(), p.options().dtype(dtype)));
  model.to(dtype);  // the buffers
}

CausalLM load_pretrained(const fs::path& dir, c10::ScalarType dtype) {
  const fs::path config_path = dir / "config.json";
  CausalLM model = causal_lm_from_config(read_model_config(dir), config_path.string(),
                                         /*init_weights=*/false);
  // In `dtype` before loading, so that a bf16 model never exists in float32, and read from the
  // mapped files.
  prepare_for_load(*model, dtype);
  load_pretrained_weights(*model, dir);
  return model;
}

void load_pretrained_weights(CausalLMImpl& model, const fs::path& dir) {
  model.load_hf_state_dict(hf::map_state_dict(dir), dir.string(), hf::release_mapped);
}

void save_model_config(const fs::path& dir, nlohmann::json config, c10::ScalarType dtype,
                       const nlohmann::json& extra_fields) {
  if (!extra_fields.is_object()) throw Error("pretrained", "extra config fields must be an object");
  config["torch_dtype"] = dtype == c10::ScalarType::BFloat16 ? "bfloat16" : "float32";
  config.update(extra_fields);
  fs::create_directories(dir);
  write_file_atomic(dir / "config.json", config.dump(2) + "\n");
}

void save_pretrained(const fs::path& dir, const CausalLMImpl& model, uint64_t max_shard_bytes) {
  fs::create_directories(dir);
  save_model_config(dir, model.hf_config(model.dtype()), model.dtype());
  hf::save_state_dict(dir, model.hf_state_dict(), max_shard_bytes);
}

void save_tokenizer_files(const fs::path& tokenizer_dir, const fs::path& out) {
  if (!fs::exists(tokenizer_dir / "tokenizer.json")) {
    Tokenizer::from_dir(tokenizer_dir).save(out);
    return;
  }
  Tokenizer::from_dir(tokenizer_dir);  // refuse a tokenizer tailor cannot read before copying it
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
    if (fs::exists(tokenizer_dir / name)) {
      write_file_atomic(out / name, read_file(tokenizer_dir / name));
    }
  }
}

void save_peft_adapter_config(const fs::path& dir, const LoraConfig& config,
                              const std::string& base_model_name_or_path, bool fan_in_fan_out) {
  fs::create_directories(dir);
  const auto json = peft_adapter_config(config, base_model_name_or_path, fan_in_fan_out);
  write_file_atomic(dir / "adapter_config.json", json.dump(2) + "\n");
}

void save_peft_adapter(const fs::path& dir, const torch::nn::Module& model,
                       const LoraConfig& config, const std::string& base_model_name_or_path,
                       bool fan_in_fan_out) {
  save_peft_adapter_config(dir, config, base_model_name_or_path, fan_in_fan_out);
  safetensors::save(dir / "adapter_model.safetensors", peft_adapter_tensors(model));
}

void save_user_peft_adapter(const fs::path& dir, const AdapterBank& bank, const std::string& user,
                            const LoraConfig& config, const std::string& base_model_name_or_path,
                            bool fan_in_fan_out) {
  TensorMap tensors;
  for (const auto& [name, tensor] : bank.user_adapter(user))
    tensors[std::string(kPeftPrefix) + name] = tensor;
  save_peft_adapter_config(dir, config, base_model_name_or_path, fan_in_fan_out);
  safetensors::save(dir / "adapter_model.safetensors", tensors);
}

LoraConfig load_peft_adapter(const fs::path& dir, torch::nn::Module& model) {
  const fs::path config_path = dir / "adapter_config.json";
  LoraConfig config = lora_config_from_peft(read_json(config_path, "peft"), config_path.string());
  const fs::path weights = dir / "adapter_model.safetensors";
  if (!fs::exists(weights)) throw Error("peft", weights.string() + ": file not found");
  load_peft_adapter_tensors(model, safetensors::load(weights), config, weights.string());
  return config;
}

}  // namespace tailor
