#include "models/io/pretrained.h"

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "models/io/hf_checkpoint.h"
#include "models/io/peft.h"
#include "models/io/safetensors.h"

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

GPT2LMHead load_gpt2_pretrained(const fs::path& dir, c10::ScalarType dtype) {
  const fs::path config_path = dir / "config.json";
  GPT2Config config =
      GPT2Config::from_json(read_json(config_path, "pretrained"), config_path.string());
  GPT2LMHead model(config, /*init_weights=*/false);
  model->to(dtype);
  model->load_hf_state_dict(hf::load_state_dict(dir), dir.string());
  return model;
}

void save_gpt2_config(const fs::path& dir, GPT2Config config, c10::ScalarType dtype,
                      const nlohmann::json& extra_fields) {
  config.torch_dtype = dtype == c10::ScalarType::BFloat16 ? "bfloat16" : "float32";
  nlohmann::json json = config.to_json();
  if (!extra_fields.is_object()) throw Error("pretrained", "extra config fields must be an object");
  json.update(extra_fields);
  write_file_atomic(dir / "config.json", json.dump(2) + "\n");
}

void save_gpt2_pretrained(const fs::path& dir, const GPT2LMHead& model, uint64_t max_shard_bytes) {
  fs::create_directories(dir);
  save_gpt2_config(dir, model->config(), model->dtype());
  hf::save_state_dict(dir, model->hf_state_dict(), max_shard_bytes);
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

LoraConfig load_peft_adapter(const fs::path& dir, torch::nn::Module& model) {
  const fs::path config_path = dir / "adapter_config.json";
  LoraConfig config = lora_config_from_peft(read_json(config_path, "peft"), config_path.string());
  const fs::path weights = dir / "adapter_model.safetensors";
  if (!fs::exists(weights)) throw Error("peft", weights.string() + ": file not found");
  load_peft_adapter_tensors(model, safetensors::load(weights), config, weights.string());
  return config;
}

}  // namespace tailor
