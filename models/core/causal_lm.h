// The causal language model every stage talks to: GPT-2 (models/gpt2) and Mistral
// (models/mistral) implement it, chosen by config.json's `model_type` (models/registry.h).
// Stages, exporters, `score`, `generate` and `bench` use only this interface.
//
// Dimensions: B batch, T new tokens in this call, P tokens already in the KV cache (0 without
// one), S = P + T, C hidden size, V vocabulary size.
//
// Names are Hugging Face's at every boundary: named_parameters() are the parameter names of the
// HF *ForCausalLM module (transformer.h.0.attn.c_attn.weight, model.layers.0.self_attn.q_proj.
// weight), LoRA targets are HF module names (c_attn, q_proj, ...), and PEFT adapter keys are
// `base_model.model.<module path>.lora_A.weight`.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <nlohmann/json_fwd.hpp>

#include "models/core/forward_hooks.h"
#include "models/core/kv_cache.h"
#include "models/core/linear.h"
#include "models/core/tensor_map.h"

namespace tailor {

class CausalLMImpl : public torch::nn::Module {
 public:
  // ---- What the model is ---------------------------------------------------------------------
  virtual std::string model_type() const = 0;  // config.json's model_type: "gpt2", "mistral"
  virtual int64_t vocab_size() const = 0;      // V
  virtual int64_t hidden_size() const = 0;     // C
  virtual int64_t num_layers() const = 0;      // number of blocks
  // The longest sequence (S) the model accepts: GPT-2's n_positions, Mistral's
  // max_position_embeddings.
  virtual int64_t max_positions() const = 0;
  // config.json's bos_token_id / eos_token_id / pad_token_id, when set.
  virtual std::optional<int64_t> bos_token_id() const = 0;
  virtual std::optional<int64_t> eos_token_id() const = 0;
  virtual std::optional<int64_t> pad_token_id() const = 0;
  // The dtype of the weights (that of the token embeddings).
  at::ScalarType dtype() const;

  // ---- Compute -------------------------------------------------------------------------------
  // input_ids [B, T] integer ids of the new tokens.
  // attention_mask [B, S] (1 = real token, 0 = padding), covering the cached positions and the
  //   new ones, as HF's generate passes it; optional (all real).
  // position_ids [B, T]; optional: P .. S-1 in every row. With left padding pass
  //   cumsum(mask) - 1 (clamped at 0), as HF's generate does.
  // cache: when given, the keys and values of the new tokens are appended to it and attention
  //   covers the cached positions too, so decoding one token at a time needs one step each.
  // Returns the final norm's output [B, T, C] in the model's dtype. Outputs at padding positions
  // carry no meaning.
  virtual at::Tensor hidden_states(const at::Tensor& input_ids,
                                   const at::Tensor& attention_mask = {},
                                   const at::Tensor& position_ids = {},
                                   KvCache* cache = nullptr) = 0;
  // hidden [B, T, C] -> logits [B, T, V] (GPT-2: tied to the token embeddings; Mistral: lm_head).
  virtual at::Tensor lm_logits(const at::Tensor& hidden) = 0;
  // lm_logits(hidden_states(...)): [B, T, V]. A model with forward hooks overrides it so that
  // group 0 (which holds the output embedding) stays entered until the logits are computed.
  virtual at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask = {},
                             const at::Tensor& position_ids = {}, KvCache* cache = nullptr);

  // The token embedding table [V, C] (wte.weight / embed_tokens.weight).
  virtual at::Tensor token_embedding_weight() const = 0;
  // The transformer blocks, in order (GPT2Block / MistralDecoderLayer).
  virtual torch::nn::ModuleList blocks() const = 0;

  // The HF base model inside (GPT-2's `transformer`, Mistral's `model`): the one child module
  // that is not `lm_head`, with its name, as *ForSequenceClassification registers it.
  std::pair<std::string, std::shared_ptr<torch::nn::Module>> base_model() const;
  // config.json's initializer_range (HF's std for new heads).
  double initializer_range() const;

  // ---- Parameter groups for ZeRO-3 (models/core/forward_hooks.h) -----------------------------
  // Group 0 holds every parameter outside the blocks; group i + 1 holds block i's (LoRA factors
  // included). Names are named_parameters() names; every parameter is in exactly one group.
  virtual std::vector<std::vector<std::string>> hook_groups() const = 0;
  // Installs (or with nullptr removes) hooks: forward and hidden_states call enter(0) first and
  // exit(0) last, and wrap block i in enter(i + 1) / exit(i + 1).
  virtual void set_forward_hooks(std::shared_ptr<ForwardHooks> hooks) = 0;

  // ---- Hugging Face names and files ----------------------------------------------------------
  // The parameter a key of an HF state dict loads into, or "" for keys transformers ignores
  // (GPT-2's causal-mask buffers, a tied lm_head.weight, rotary inv_freq buffers).
  virtual std::string hf_parameter_name(const std::string& key) const = 0;
  // Loads HF weights (any floating dtype, converted to the model's), each key mapped through
  // hf_parameter_name. Everything is validated before anything is copied: missing keys,
  // unexpected keys, duplicates, non-floating tensors and shape mismatches throw
  // Error("<model_type>", "<source>: ...") naming the key (and both shapes), leaving the model
  // untouched. LoRA factors are not part of a base state dict; loading into a merged model is
  // refused. `copied`, if set, sees each source tensor right after its copy (the pretrained
  // loader drops the source's file pages there).
  void load_hf_state_dict(const TensorMap& tensors, const std::string& source = "state dict",
                          const std::function<void(const at::Tensor&)>& copied = {});
  // The base weights under the names save_pretrained writes (no tied lm_head, no LoRA factors),
  // as detached views of the parameters.
  TensorMap hf_state_dict() const;
  // config.json for this model with torch_dtype `dtype` (architectures, model_type, every field
  // HF's config class reads).
  virtual nlohmann::json hf_config(at::ScalarType dtype) const = 0;
  // The layout of the model's linears: kConv1D for GPT-2 (PEFT fan_in_fan_out true), kLinear for
  // Mistral.
  virtual WeightLayout linear_layout() const = 0;
  // The HF module names of every linear inside the blocks, which LoRA may target (c_attn, c_proj,
  // c_fc / q_proj ... down_proj); targeting them all is the usual "all linear layers" choice.
  virtual std::vector<std::string> lora_target_names() const = 0;

  // HF's _init_weights, drawn from torch's default generator (seed with torch::manual_seed):
  // init_parameter on every parameter but LoRA factors, in named_parameters() order.
  void init_weights();
  // HF's initial value of one parameter (by its name here), drawn into `p` in place. Calling it
  // on each parameter in order on freshly allocated tensors draws exactly what init_weights
  // does: that is how ZeRO-3 initialises a model no rank holds whole (train/loop/model_setup.h).
  virtual void init_parameter(const std::string& name, at::Tensor& p) const = 0;
};

using CausalLM = std::shared_ptr<CausalLMImpl>;

// Log-probabilities of each next token: logits [B, T, V] and input_ids [B, T] -> [B, T - 1],
// entry t = log softmax(logits[:, t])[input_ids[:, t + 1]], computed in float32 (float64 for a
// float64 model).
at::Tensor next_token_log_probs(const at::Tensor& logits, const at::Tensor& input_ids);

// The summed log-probability of the masked tokens of each row: logits [B, T, V], input_ids
// [B, T], target_mask [B, T] (1 where a token counts: response tokens, not prompt or padding;
// position 0 never counts since nothing predicts it) -> [B], float32 (float64 for a float64
// model). This is the log π(y|x) of DPO and the negative NLL that `tailor score` reports.
at::Tensor sequence_log_probs(const at::Tensor& logits, const at::Tensor& input_ids,
                              const at::Tensor& target_mask);

}  // namespace tailor
