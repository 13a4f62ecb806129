// Mistral (Jiang et al. 2023) computing what Hugging Face's MistralForCausalLM computes (eager
// attention): pre-norm decoder layers with RMSNorm, rotary position embeddings (rotate-half form),
// grouped-query attention with an optional sliding window, and a SwiGLU MLP.
//
// Dimensions: B batch, T new tokens, P cached tokens, S = P + T, C = hidden_size,
// H = num_attention_heads, K = num_key_value_heads, G = H / K, D = head_dim, I = intermediate_size,
// V = vocab_size.
//
// named_parameters() are exactly HF's names: model.embed_tokens.weight [V, C],
// model.layers.{i}.self_attn.{q,k,v,o}_proj.weight ([H D, C], [K D, C], [K D, C], [C, H D]),
// model.layers.{i}.mlp.{gate,up}_proj.weight [I, C], model.layers.{i}.mlp.down_proj.weight [C, I],
// model.layers.{i}.{input_layernorm,post_attention_layernorm}.weight [C], model.norm.weight [C],
// lm_head.weight [V, C] (absent when tie_word_embeddings). Linears are nn.Linear layout, no bias.
//
// Precision: RMSNorm, the rotary cos/sin and the attention softmax are computed in float32 for
// float32/bfloat16/float16 models, as HF does; a float64 model computes them in float64 (HF would
// round them to float32), so that a float64 model is a float64 computation throughout.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/pimpl.h>

#include "models/core/causal_lm.h"
#include "models/core/linear.h"
#include "models/mistral/mistral_config.h"

namespace tailor {

// HF MistralRMSNorm: weight * (x / sqrt(mean(x^2) + eps)), the normalisation in float32.
class MistralRMSNormImpl : public torch::nn::Module {
 public:
  MistralRMSNormImpl(int64_t hidden_size, double eps);
  at::Tensor forward(const at::Tensor& x);  // [..., C] -> [..., C]

  at::Tensor weight;  // [C], ones at construction

 private:
  double eps_;
};
TORCH_MODULE(MistralRMSNorm);

// The rotary embedding of a batch of positions: cos and sin [B or 1, T, D], built from
// cat(freqs, freqs) with freqs = position * theta^(-2i/D), i < D/2 (HF MistralRotaryEmbedding).
struct RotaryAngles {
  at::Tensor cos;
  at::Tensor sin;
};

class MistralAttentionImpl : public torch::nn::Module {
 public:
  MistralAttentionImpl(const MistralConfig& config, int64_t layer_idx);
  // x [B, T, C]; rope cos/sin [B or 1, T, D]; blocked [B or 1, 1, T, S] bool (true = key hidden
  // from the query); cache (optional) receives this layer's keys and values -> [B, T, C].
  at::Tensor forward(const at::Tensor& x, const RotaryAngles& rope, const at::Tensor& blocked,
                     KvCache* cache);

  Linear q_proj{nullptr};  // C -> H D
  Linear k_proj{nullptr};  // C -> K D
  Linear v_proj{nullptr};  // C -> K D
  Linear o_proj{nullptr};  // H D -> C

 private:
  int64_t layer_idx_;
  int64_t num_heads_;     // H
  int64_t num_kv_heads_;  // K
  int64_t head_dim_;      // D
  double attention_dropout_;
};
TORCH_MODULE(MistralAttention);

// SwiGLU (Shazeer 2020): down(silu(gate(x)) * up(x)).
class MistralMLPImpl : public torch::nn::Module {
 public:
  explicit MistralMLPImpl(const MistralConfig& config);
  at::Tensor forward(const at::Tensor& x);  // [B, T, C] -> [B, T, C]

  Linear gate_proj{nullptr};  // C -> I
  Linear up_proj{nullptr};    // C -> I
  Linear down_proj{nullptr};  // I -> C
};
TORCH_MODULE(MistralMLP);

class MistralDecoderLayerImpl : public torch::nn::Module {
 public:
  MistralDecoderLayerImpl(const MistralConfig& config, int64_t layer_idx);
  // Pre-norm residual layer: h = x + attn(norm(x)); out = h + mlp(norm(h)). Shapes as
  // MistralAttentionImpl::forward.
  at::Tensor forward(const at::Tensor& x, const RotaryAngles& rope, const at::Tensor& blocked,
                     KvCache* cache);

  MistralAttention self_attn{nullptr};
  MistralMLP mlp{nullptr};
  MistralRMSNorm input_layernorm{nullptr};
  MistralRMSNorm post_attention_layernorm{nullptr};
};
TORCH_MODULE(MistralDecoderLayer);

// HF's MistralModel: token embeddings, decoder layers, final RMSNorm.
class MistralModelImpl : public torch::nn::Module {
 public:
  explicit MistralModelImpl(const MistralConfig& config);
  // See MistralForCausalLMImpl::hidden_states (without the group-0 hooks).
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                     const at::Tensor& position_ids, KvCache* cache);

  torch::nn::Embedding embed_tokens{nullptr};  // [V, C]
  torch::nn::ModuleList layers{nullptr};       // MistralDecoderLayer x num_hidden_layers
  MistralRMSNorm norm{nullptr};

  // Layer i is hook group i + 1 (see MistralForCausalLMImpl::hook_groups); null = no hooks.
  std::shared_ptr<ForwardHooks> hooks;

 private:
  MistralConfig config_;
};
TORCH_MODULE(MistralModel);

class MistralForCausalLMImpl : public CausalLMImpl {
 public:
  // With init_weights, parameters get HF's MistralPreTrainedModel._init_weights values, drawn
  // from torch's default generator (seed with torch::manual_seed): linear and embedding weights
  // N(0, initializer_range) (the pad_token_id row zero), RMSNorm weights 1. Without it they are
  // left unset (for loading a checkpoint right after).
  explicit MistralForCausalLMImpl(const MistralConfig& config, bool init_weights = true);

  std::string model_type() const override { return "mistral"; }
  int64_t vocab_size() const override { return config_.vocab_size; }
  int64_t hidden_size() const override { return config_.hidden_size; }
  int64_t num_layers() const override { return config_.num_hidden_layers; }
  int64_t max_positions() const override { return config_.max_position_embeddings; }
  std::optional<int64_t> bos_token_id() const override { return config_.bos_token_id; }
  std::optional<int64_t> eos_token_id() const override { return config_.eos_token_id; }
  std::optional<int64_t> pad_token_id() const override { return config_.pad_token_id; }

  // input_ids [B, T]; attention_mask [B, S] (optional); position_ids [B or 1, T] (optional,
  // default P .. S-1); cache (optional) -> the final RMSNorm's output [B, T, C]. Key j is hidden
  // from the new token i (absolute index P + i) when j > P + i, when attention_mask[j] is 0, or
  // when a sliding window is set and P + i - j >= sliding_window. Hidden keys get the dtype's
  // lowest value before the softmax, as HF does, so a query whose every key is hidden (a
  // left-padding position) attends uniformly to all S keys.
  at::Tensor hidden_states(const at::Tensor& input_ids, const at::Tensor& attention_mask = {},
                           const at::Tensor& position_ids = {}, KvCache* cache = nullptr) override;
  // hidden [B, T, C] -> logits [B, T, V] (lm_head, or the embeddings when tied).
  at::Tensor lm_logits(const at::Tensor& hidden) override;
  // lm_logits(hidden_states(...)) [B, T, V], inside one enter(0) / exit(0) so that lm_head stays
  // materialized under ZeRO-3.
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask = {},
                     const at::Tensor& position_ids = {}, KvCache* cache = nullptr) override;

  at::Tensor token_embedding_weight() const override { return model->embed_tokens->weight; }
  torch::nn::ModuleList blocks() const override { return model->layers; }

  // Group 0: model.embed_tokens, model.norm, lm_head; group i + 1: model.layers.i.* (LoRA
  // factors included).
  std::vector<std::vector<std::string>> hook_groups() const override;
  void set_forward_hooks(std::shared_ptr<ForwardHooks> hooks) override;

  // Keys may omit the `model.` prefix (a MistralModel checkpoint); rotary `inv_freq` buffers of
  // old checkpoints and a tied lm_head.weight map to "" (ignored).
  std::string hf_parameter_name(const std::string& key) const override;
  nlohmann::json hf_config(at::ScalarType dtype) const override;
  WeightLayout linear_layout() const override { return WeightLayout::kLinear; }
  // q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, and lm_head when untied.
  std::vector<std::string> lora_target_names() const override;
  void init_parameter(const std::string& name, at::Tensor& p) const override;

  const MistralConfig& config() const { return config_; }

  MistralModel model{nullptr};
  Linear lm_head{nullptr};  // [V, C]; null when tie_word_embeddings

 private:
  MistralConfig config_;
  std::shared_ptr<ForwardHooks> hooks_;
};
TORCH_MODULE(MistralForCausalLM);

}  // namespace tailor
