// Mistral hyperparameters as Hugging Face's `MistralConfig` names them (config.json keys).
//
// Defaults are those of transformers' MistralConfig class, i.e. what a config.json that lacks the
// key means (num_key_value_heads 8, sliding_window 4096, rms_norm_eps 1e-6, rope_theta 1e4,
// max_position_embeddings 131072, bos 1, eos 2): the released checkpoints set every one of them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tailor {

struct MistralConfig {
  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 14336;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  // Grouped-query attention (Ainslie et al. 2023): each of the K key/value heads serves
  // num_attention_heads / K query heads. config.json null means num_attention_heads (HF).
  int64_t num_key_value_heads = 8;
  std::optional<int64_t> head_dim;  // null => hidden_size / num_attention_heads (floor), as HF
  std::string hidden_act = "silu";  // the only activation tailor implements
  int64_t max_position_embeddings = 4096 * 32;
  double initializer_range = 0.02;
  double rms_norm_eps = 1e-6;
  // RoPE base. config.json writes it as `rope_theta` or, in the newest transformers, nested as
  // rope_parameters.rope_theta; only the default (unscaled) RoPE is implemented.
  double rope_theta = 10000.0;
  // A query at absolute index q sees keys j with q - sliding_window < j <= q; null = full causal.
  std::optional<int64_t> sliding_window = 4096;
  double attention_dropout = 0.0;
  bool tie_word_embeddings = false;
  std::optional<int64_t> bos_token_id = 1;
  std::optional<int64_t> eos_token_id = 2;
  // Also nn.Embedding's padding_idx (its row starts at zero and gets no gradient), as in HF.
  std::optional<int64_t> pad_token_id;
  std::string torch_dtype = "float32";  // "float32", "bfloat16", "float16" or "float64"

  int64_t attention_head_dim() const {
    return head_dim ? *head_dim : hidden_size / num_attention_heads;
  }

  // Throws Error("config", "<source>: <key> (<value>) <what is wrong>").
  void validate(const std::string& source_name = "MistralConfig") const;

  // Reads HF config.json fields (unknown keys are ignored, as transformers does); type and value
  // errors name `source_name` and the key, e.g.
  //   [config] out/config.json: hidden_act: unsupported "gelu" (tailor implements "silu")
  // RoPE scaling (rope_scaling / rope_parameters with a rope_type other than "default") is
  // refused rather than silently computed without it.
  static MistralConfig from_json(const nlohmann::json& json, const std::string& source_name);

  // A config.json that transformers' MistralForCausalLM.from_pretrained accepts.
  nlohmann::json to_json() const;

  // Named presets: "mistral-7b" (Mistral-7B-v0.1's config.json) and "mistral-tiny" (hidden 64,
  // 2 layers, 4 heads, 2 key/value heads, the full 32000-token vocabulary) for tests and
  // recipes.
  static MistralConfig preset(const std::string& name);
  static std::vector<std::string> preset_names();
};

// mistralai/Mistral-7B-v0.1 (config.json on the HF hub).
MistralConfig mistral_7b();
// A small model with the real vocabulary, so that the Mistral tokenizer fits.
MistralConfig mistral_tiny();

}  // namespace tailor
