// GPT-2 hyperparameters as Hugging Face's `GPT2Config` names them (config.json keys).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tailor {

struct GPT2Config {
  int64_t vocab_size = 50257;
  int64_t n_positions = 1024;  // config.json may carry the legacy `n_ctx` instead
  int64_t n_embd = 768;
  int64_t n_layer = 12;
  int64_t n_head = 12;
  std::optional<int64_t> n_inner;  // null => 4 * n_embd, as in HF
  // "gelu_new" (= "gelu_pytorch_tanh", tanh approximation), "gelu" (erf) or "relu".
  std::string activation_function = "gelu_new";
  double layer_norm_epsilon = 1e-5;
  double resid_pdrop = 0.1;
  double embd_pdrop = 0.1;
  double attn_pdrop = 0.1;
  double initializer_range = 0.02;
  // HF attention options: scores /= sqrt(head_dim) unless scale_attn_weights is false, and
  // additionally /= (layer_idx + 1) when scale_attn_by_inverse_layer_idx is true.
  bool scale_attn_weights = true;
  bool scale_attn_by_inverse_layer_idx = false;
  bool tie_word_embeddings = true;
  int64_t bos_token_id = 50256;
  int64_t eos_token_id = 50256;
  std::string torch_dtype = "float32";  // written to config.json; "float32" or "bfloat16"

  int64_t inner_dim() const { return n_inner ? *n_inner : 4 * n_embd; }
  int64_t head_dim() const { return n_embd / n_head; }

  // Throws Error("config", "<source>: <key> (<value>) <what is wrong>").
  void validate(const std::string& source_name = "GPT2Config") const;

  // Reads HF config.json fields (unknown keys are ignored, as transformers does); type and value
  // errors name `source_name` and the key, e.g.
  //   [config] out/config.json: n_embd (768) must be divisible by n_head (7)
  static GPT2Config from_json(const nlohmann::json& json, const std::string& source_name);

  // A config.json that transformers' GPT2LMHeadModel.from_pretrained accepts.
  nlohmann::json to_json() const;

  // Named presets: "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", and small ones for tests and
  // the quickstart: "gpt2-tiny" (n_embd 64, 2 layers, 4 heads) and "gpt2-mini" (n_embd 128,
  // 4 layers, 4 heads), both with the full 50257-token vocabulary and n_positions 256.
  static GPT2Config preset(const std::string& name);
  static std::vector<std::string> preset_names();
};

// The released OpenAI/HF checkpoints' shapes.
GPT2Config gpt2_124m();
GPT2Config gpt2_medium();
GPT2Config gpt2_large();
GPT2Config gpt2_xl();
GPT2Config gpt2_tiny();
GPT2Config gpt2_mini();

}  // namespace tailor
