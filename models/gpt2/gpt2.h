// GPT-2 (Radford et al. 2019) computing what Hugging Face's GPT2LMHeadModel computes.
//
// Dimensions: B batch, T sequence length, C = n_embd, H = n_head, D = C / H, V = vocab_size,
// I = inner (MLP) size.
//
// named_parameters() are exactly HF's names: transformer.wte.weight, transformer.wpe.weight,
// transformer.h.{i}.ln_1.{weight,bias}, transformer.h.{i}.attn.c_attn.{weight,bias},
// transformer.h.{i}.attn.c_proj.*, transformer.h.{i}.ln_2.*, transformer.h.{i}.mlp.c_fc.*,
// transformer.h.{i}.mlp.c_proj.*, transformer.ln_f.*; lm_head is tied to wte (no parameter) unless
// tie_word_embeddings is false, when lm_head.weight [V, C] exists. Conv1D weights are [in, out].
#pragma once

#include <cstdint>
#include <string>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "models/core/causal_lm.h"
#include "models/core/linear.h"
#include "models/gpt2/gpt2_config.h"

namespace tailor {

class GPT2AttentionImpl : public torch::nn::Module {
 public:
  GPT2AttentionImpl(const GPT2Config& config, int64_t layer_idx);
  // x [B, T, C]; blocked [B or 1, 1, T, S] bool (true = key hidden from the query,
  // models/core/attention_mask.h); with a cache, this layer's keys/values are appended to it and
  // attention covers the P cached positions too (S = P + T). -> [B, T, C]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& blocked, KvCache* cache = nullptr);

  Linear c_attn{nullptr};  // C -> 3C, output split q | k | v
  Linear c_proj{nullptr};  // C -> C

 private:
  int64_t n_head_;
  int64_t head_dim_;
  double score_divisor_;  // sqrt(D) (and * (layer_idx + 1) when configured)
  double attn_pdrop_;
  double resid_pdrop_;
  int64_t layer_idx_;
};
TORCH_MODULE(GPT2Attention);

class GPT2MLPImpl : public torch::nn::Module {
 public:
  explicit GPT2MLPImpl(const GPT2Config& config);
  at::Tensor forward(const at::Tensor& x);  // [B, T, C] -> [B, T, C]

  Linear c_fc{nullptr};    // C -> I
  Linear c_proj{nullptr};  // I -> C

 private:
  std::string activation_;
  double resid_pdrop_;
};
TORCH_MODULE(GPT2MLP);

class GPT2BlockImpl : public torch::nn::Module {
 public:
  GPT2BlockImpl(const GPT2Config& config, int64_t layer_idx);
  // pre-LN residual block; see GPT2AttentionImpl::forward.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& blocked, KvCache* cache = nullptr);

  torch::nn::LayerNorm ln_1{nullptr};
  GPT2Attention attn{nullptr};
  torch::nn::LayerNorm ln_2{nullptr};
  GPT2MLP mlp{nullptr};
};
TORCH_MODULE(GPT2Block);

// HF's GPT2Model: embeddings, blocks, final LayerNorm.
class GPT2ModelImpl : public torch::nn::Module {
 public:
  explicit GPT2ModelImpl(const GPT2Config& config);
  // See CausalLMImpl::hidden_states.
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                     const at::Tensor& position_ids, KvCache* cache = nullptr);

  torch::nn::Embedding wte{nullptr};  // [V, C]
  torch::nn::Embedding wpe{nullptr};  // [n_positions, C]
  torch::nn::ModuleList h{nullptr};   // GPT2Block x n_layer
  torch::nn::LayerNorm ln_f{nullptr};

  // Block i is hook group i + 1 (see GPT2LMHeadImpl::hook_groups); null = no hooks.
  std::shared_ptr<ForwardHooks> hooks;

 private:
  GPT2Config config_;
};
TORCH_MODULE(GPT2Model);

class GPT2LMHeadImpl : public CausalLMImpl {
 public:
  // With init_weights, parameters get HF's GPT2PreTrainedModel._init_weights values, drawn from
  // torch's default generator (seed with torch::manual_seed): weights N(0, initializer_range),
  // c_proj weights N(0, initializer_range / sqrt(2 n_layer)), biases 0, LayerNorm 1 / 0. Without
  // it they are left unset (for loading a checkpoint right after).
  explicit GPT2LMHeadImpl(const GPT2Config& config, bool init_weights = true);

  // CausalLMImpl. input_ids, attention_mask, position_ids and cache as CausalLMImpl::
  // hidden_states describes. Masked keys get the dtype's lowest value before the softmax, as HF
  // does, so a query whose every key is masked (a left-padding position) attends uniformly to
  // all keys; outputs at padding positions carry no meaning. position_ids must lie in
  // [0, n_positions).
  std::string model_type() const override { return "gpt2"; }
  int64_t vocab_size() const override { return config_.vocab_size; }
  int64_t hidden_size() const override { return config_.n_embd; }
  int64_t num_layers() const override { return config_.n_layer; }
  int64_t max_positions() const override { return config_.n_positions; }
  std::optional<int64_t> bos_token_id() const override { return config_.bos_token_id; }
  std::optional<int64_t> eos_token_id() const override { return config_.eos_token_id; }
  std::optional<int64_t> pad_token_id() const override { return std::nullopt; }

  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask = {},
                     const at::Tensor& position_ids = {}, KvCache* cache = nullptr) override;
  // The final LayerNorm's output (ln_f) [B, T, C], e.g. for reward heads.
  at::Tensor hidden_states(const at::Tensor& input_ids, const at::Tensor& attention_mask = {},
                           const at::Tensor& position_ids = {}, KvCache* cache = nullptr) override;
  // hidden [B, T, C] -> logits [B, T, V] (tied: hidden wte^T).
  at::Tensor lm_logits(const at::Tensor& hidden) override;
  at::Tensor token_embedding_weight() const override { return transformer->wte->weight; }
  torch::nn::ModuleList blocks() const override { return transformer->h; }

  // Parameter groups for ForwardHooks: group 0 holds every parameter outside the blocks (wte, wpe,
  // ln_f, an untied lm_head); group i + 1 holds block i's (transformer.h.i.*, LoRA factors
  // included).
  std::vector<std::vector<std::string>> hook_groups() const override;
  void set_forward_hooks(std::shared_ptr<ForwardHooks> hooks) override;

  // Keys may or may not carry the `transformer.` prefix; the causal-mask buffers
  // `h.N.attn.bias` / `h.N.attn.masked_bias` are ignored, and so is `lm_head.weight` when the
  // embeddings are tied (transformers re-ties it to wte and ignores the stored copy).
  std::string hf_parameter_name(const std::string& key) const override;
  nlohmann::json hf_config(at::ScalarType dtype) const override;
  WeightLayout linear_layout() const override { return WeightLayout::kConv1D; }
  std::vector<std::string> lora_target_names() const override;

  // HF's initialisation (see the constructor).
  void init_parameter(const std::string& name, at::Tensor& p) const override;

  const GPT2Config& config() const { return config_; }

  GPT2Model transformer{nullptr};
  Linear lm_head{nullptr};  // only when tie_word_embeddings is false: [V, C] (nn.Linear layout)

 private:
  GPT2Config config_;
  std::shared_ptr<ForwardHooks> hooks_;
};
TORCH_MODULE(GPT2LMHead);

// The parameter a key of an HF GPT-2 state dict loads into, as load_hf_state_dict maps it
// ("h.0.ln_1.weight" -> "transformer.h.0.ln_1.weight"), or "" for keys transformers ignores
// (causal-mask buffers; lm_head.weight when the embeddings are tied).
std::string gpt2_parameter_name(const std::string& key, bool tie_word_embeddings);

}  // namespace tailor
