// Reward model = causal-LM backbone + last-real-token pooling + linear head with K outputs, as
// Hugging Face's GPT2ForSequenceClassification computes it: score = Linear(n_embd, num_labels,
// bias=False) applied to the final hidden state (ln_f output) at each row's last non-pad token.
// K = 1 for a Bradley-Terry reward model; K > 1 for a multi-reward model.
//
// Dimensions: B batch, T sequence length, C = n_embd, K = num_labels.
//
// named_parameters() read like HF's GPT2ForSequenceClassification (transformer.wte.weight, ...,
// transformer.h.{i}.attn.c_attn.weight, ..., score.weight [K, C]) or
// MistralForSequenceClassification (model.embed_tokens.weight, ..., score.weight): the
// backbone's base model (CausalLMImpl::base_model) is registered directly, not as
// "backbone.transformer", so LoRA factors read transformer.h.0.attn.c_attn.lora_A.weight as in a
// PEFT SEQ_CLS adapter. The backbone's LM head is unused and not registered (an untied lm_head
// is neither moved by to() nor listed in parameters()).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "models/core/causal_lm.h"
#include "models/core/lora.h"

namespace tailor {

class RewardModelImpl : public torch::nn::Module {
 public:
  // The head is created in the backbone's dtype and device and initialised as HF's
  // _init_weights does for nn.Linear: N(0, initializer_range), drawn from torch's default
  // generator (seed with torch::manual_seed).
  RewardModelImpl(CausalLM backbone, int64_t num_labels);

  // input_ids [B, T]; attention_mask [B, T] (1 real, 0 pad; RIGHT padding, every row >= 1 real
  // token; undefined = no padding) -> rewards [B, K] in the model's dtype. Position ids are
  // 0..T-1 as in HF, so right padding leaves the real tokens' computation unchanged.
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask = {});

  // The hidden state at each row's last real token, [B, C], for heads other than `score`.
  // Throws Error("reward_model", ...) for a row without real tokens or with left padding.
  at::Tensor pooled(const at::Tensor& input_ids, const at::Tensor& attention_mask = {});

  int64_t num_labels() const;
  // score.weight ~ N(0, std), the default being the backbone config's initializer_range.
  void init_head(double std);
  void init_head();

  // Keeps the (unregistered) backbone's training flag in step with its transformer.
  void train(bool on = true) override;

  CausalLM backbone;
  torch::nn::Linear score{nullptr};  // weight [K, C], no bias
};
TORCH_MODULE(RewardModel);

// Applies LoRA to the backbone's layers (apply_lora) and keeps the head trainable, as PEFT does
// for a SEQ_CLS task (the head is in modules_to_save). Returns the wrapped module paths.
std::vector<std::string> apply_reward_lora(RewardModel& model, const LoraConfig& config);

}  // namespace tailor
