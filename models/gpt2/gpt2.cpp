#include "models/gpt2/gpt2.h"

#include <cmath>
#include <limits>
#include <set>
#include <sstream>
#include <tuple>
#include <vector>

#include <torch/nn/init.h>

#include "common/error.h"
#include "common/shape_string.h"
#include "models/core/attention_mask.h"
#include "models/core/lora.h"

namespace tailor {
namespace {

const char* kGpt2Scope = "gpt2";

// `transformer.h.<digits>.attn.bias` / `.attn.masked_bias`: causal-mask buffers in old checkpoints.
bool is_attention_buffer(const std::string& name) {
  const std::string prefix = "transformer.h.";
  if (name.rfind(prefix, 0) != 0) return false;
  size_t pos = prefix.size();
  const size_t digits_begin = pos;
  while (pos < name.size() && std::isdigit(static_cast<unsigned char>(name[pos])))
    ++pos;
  if (pos == digits_begin) return false;
  const std::string rest = name.substr(pos);
  return rest == ".attn.bias" || rest == ".attn.masked_bias";
}

}  // namespace

std::string gpt2_parameter_name(const std::string& key, bool tie_word_embeddings) {
  std::string name = key;
  if (name.rfind("transformer.", 0) != 0 && name.rfind("lm_head.", 0) != 0) {
    name = "transformer." + name;
  }
  if (is_attention_buffer(name)) return "";
  if (name == "lm_head.weight" && tie_word_embeddings) return "";
  return name;
}

// ---------------------------------------------------------------------------------------------
GPT2AttentionImpl::GPT2AttentionImpl(const GPT2Config& config, int64_t layer_idx)
    : n_head_(config.n_head),
      head_dim_(config.head_dim()),
      attn_pdrop_(config.attn_pdrop),
      resid_pdrop_(config.resid_pdrop),
      layer_idx_(layer_idx) {
  const int64_t C = config.n_embd;
  c_attn = register_module("c_attn", Linear(C, 3 * C, WeightLayout::kConv1D, true));
  c_proj = register_module("c_proj", Linear(C, C, WeightLayout::kConv1D, true));
  // HF GPT2Attention._attn: scores / sqrt(D) if scale_attn_weights, / (layer_idx + 1) if
  // scale_attn_by_inverse_layer_idx.
  score_divisor_ = config.scale_attn_weights ? std::sqrt(static_cast<double>(head_dim_)) : 1.0;
  if (config.scale_attn_by_inverse_layer_idx) score_divisor_ *= static_cast<double>(layer_idx + 1);
}

at::Tensor GPT2AttentionImpl::forward(const at::Tensor& x, const at::Tensor& blocked,
                                      KvCache* cache) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2);
  // [B, T, 3C] -> [3, B, H, T, D]: one GEMM for q, k and v.
  const at::Tensor qkv = c_attn(x).view({B, T, 3, n_head_, head_dim_}).permute({2, 0, 3, 1, 4});
  const at::Tensor q = qkv[0];
  at::Tensor k = qkv[1], v = qkv[2];
  if (cache) std::tie(k, v) = cache->append(layer_idx_, k, v);  // [B, H, S, D]
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1));       // [B, H, T, S]
  if (score_divisor_ != 1.0) scores = scores / score_divisor_;
  scores = scores.masked_fill(blocked, lowest_value(scores.scalar_type()));
  // Softmax accumulates in float32 for reduced-precision models (HF's eager path softmaxes in
  // the model dtype; float32 accumulation is the more accurate choice and identical in float32).
  at::Tensor probs = scores.scalar_type() == at::kBFloat16 || scores.scalar_type() == at::kHalf
                         ? at::softmax(scores, -1, at::kFloat).to(scores.scalar_type())
                         : at::softmax(scores, -1);
  if (attn_pdrop_ > 0.0) probs = at::dropout(probs, attn_pdrop_, is_training());
  const at::Tensor context = at::matmul(probs, v).transpose(1, 2).reshape({B, T, C});
  at::Tensor out = c_proj(context);
  if (resid_pdrop_ > 0.0) out = at::dropout(out, resid_pdrop_, is_training());
  return out;
}

// ---------------------------------------------------------------------------------------------
GPT2MLPImpl::GPT2MLPImpl(const GPT2Config& config)
    : activation_(config.activation_function), resid_pdrop_(config.resid_pdrop) {
  const int64_t C = config.n_embd, I = config.inner_dim();
  c_fc = register_module("c_fc", Linear(C, I, WeightLayout::kConv1D, true));
  c_proj = register_module("c_proj", Linear(I, C, WeightLayout::kConv1D, true));
}

at::Tensor GPT2MLPImpl::forward(const at::Tensor& x) {
  at::Tensor hidden = c_fc(x);
  // gelu_new (HF NewGELUActivation) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), which is
  // torch's gelu(approximate="tanh").
  if (activation_ == "gelu_new" || activation_ == "gelu_pytorch_tanh") {
    hidden = at::gelu(hidden, "tanh");
  } else if (activation_ == "gelu") {
    hidden = at::gelu(hidden);
  } else if (activation_ == "relu") {
    hidden = at::relu(hidden);
  } else {
    throw Error(kGpt2Scope, "activation_function: unsupported \"" + activation_ + "\"");
  }
  at::Tensor out = c_proj(hidden);
  if (resid_pdrop_ > 0.0) out = at::dropout(out, resid_pdrop_, is_training());
  return out;
}

// ---------------------------------------------------------------------------------------------
GPT2BlockImpl::GPT2BlockImpl(const GPT2Config& config, int64_t layer_idx) {
  const auto norm = torch::nn::LayerNormOptions({config.n_embd}).eps(config.layer_norm_epsilon);
  ln_1 = register_module("ln_1", torch::nn::LayerNorm(norm));
  attn = register_module("attn", GPT2Attention(config, layer_idx));
  ln_2 = register_module("ln_2", torch::nn::LayerNorm(norm));
  mlp = register_module("mlp", GPT2MLP(config));
}

at::Tensor GPT2BlockImpl::forward(const at::Tensor& x, const at::Tensor& blocked, KvCache* cache) {
  at::Tensor hidden = x + attn(ln_1(x), blocked, cache);
  return hidden + mlp(ln_2(hidden));
}

// ---------------------------------------------------------------------------------------------
GPT2ModelImpl::GPT2ModelImpl(const GPT2Config& config) : config_(config) {
  wte = register_module(
      "wte", torch::nn::Embedding(torch::nn::EmbeddingOptions(config.vocab_size, config.n_embd)));
  wpe = register_module(
      "wpe", torch::nn::Embedding(torch::nn::EmbeddingOptions(config.n_positions, config.n_embd)));
  h = register_module("h", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.n_layer; ++i)
    h->push_back(GPT2Block(config, i));
  ln_f = register_module(
      "ln_f", torch::nn::LayerNorm(
                  torch::nn::LayerNormOptions({config.n_embd}).eps(config.layer_norm_epsilon)));
}

at::Tensor GPT2ModelImpl::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                  const at::Tensor& position_ids, KvCache* cache) {
  const int64_t P = cache ? cache->length() : 0;
  check_lm_inputs(kGpt2Scope, input_ids, attention_mask, position_ids, P, config_.vocab_size);
  const int64_t T = input_ids.size(1);
  if (P + T > config_.n_positions) {
    throw Error(kGpt2Scope, "sequence length " + std::to_string(P + T) + " exceeds n_positions " +
                                std::to_string(config_.n_positions));
  }
  const at::Tensor ids = input_ids.to(at::kLong);
  at::Tensor positions = position_ids.defined() ? position_ids.to(at::kLong)
                                                : default_position_ids(T, P, ids.device());
  if (positions.numel() > 0 && (positions.min().item<int64_t>() < 0 ||
                                positions.max().item<int64_t>() >= config_.n_positions)) {
    throw Error(kGpt2Scope,
                "position_ids must lie in [0, " + std::to_string(config_.n_positions) + ")");
  }
  at::Tensor hidden = wte(ids) + wpe(positions);  // [B, T, C]
  if (config_.embd_pdrop > 0.0) hidden = at::dropout(hidden, config_.embd_pdrop, is_training());

  const at::Tensor blocked = blocked_keys(attention_mask, T, P, std::nullopt, ids.device());
  for (size_t i = 0; i < h->size(); ++i) {
    const int group = static_cast<int>(i) + 1;
    if (hooks) hooks->enter(group, hidden);
    hidden = (*h)[i]->as<GPT2BlockImpl>()->forward(hidden, blocked, cache);
    if (hooks) hooks->exit(group, hidden);
  }
  return ln_f(hidden);
}

// ---------------------------------------------------------------------------------------------
GPT2LMHeadImpl::GPT2LMHeadImpl(const GPT2Config& config, bool init) : config_(config) {
  config_.validate();
  transformer = register_module("transformer", GPT2Model(config_));
  if (!config_.tie_word_embeddings) {
    lm_head = register_module(
        "lm_head", Linear(config_.n_embd, config_.vocab_size, WeightLayout::kLinear, false));
  }
  if (init) init_weights();
}

void GPT2LMHeadImpl::init_parameter(const std::string& name, at::Tensor& p) const {
  torch::NoGradGuard no_grad;
  const double std = config_.initializer_range;
  // GPT-2 paper §2.3 / HF: residual projections scaled by 1/sqrt(2 n_layer).
  const double proj_std = std / std::sqrt(2.0 * static_cast<double>(config_.n_layer));
  const bool layer_norm = name.find(".ln_") != std::string::npos;
  const bool is_bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
  if (layer_norm) {
    is_bias ? p.zero_() : p.fill_(1.0);
  } else if (is_bias) {
    p.zero_();
  } else if (name.size() >= 13 && name.compare(name.size() - 13, 13, "c_proj.weight") == 0) {
    p.normal_(0.0, proj_std);
  } else {
    p.normal_(0.0, std);
  }
}

at::Tensor GPT2LMHeadImpl::hidden_states(const at::Tensor& input_ids,
                                         const at::Tensor& attention_mask,
                                         const at::Tensor& position_ids, KvCache* cache) {
  if (hooks_) hooks_->enter(0, input_ids);
  at::Tensor hidden = transformer(input_ids, attention_mask, position_ids, cache);
  if (hooks_) hooks_->exit(0, hidden);
  return hidden;
}

at::Tensor GPT2LMHeadImpl::lm_logits(const at::Tensor& hidden) {
  if (lm_head) return lm_head(hidden);
  return at::linear(hidden, transformer->wte->weight);  // tied: hidden wte^T, [B, T, V]
}

at::Tensor GPT2LMHeadImpl::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                   const at::Tensor& position_ids, KvCache* cache) {
  if (hooks_) hooks_->enter(0, input_ids);
  at::Tensor logits = lm_logits(transformer(input_ids, attention_mask, position_ids, cache));
  if (hooks_) hooks_->exit(0, logits);
  return logits;
}

std::vector<std::vector<std::string>> GPT2LMHeadImpl::hook_groups() const {
  std::vector<std::vector<std::string>> groups(static_cast<size_t>(config_.n_layer) + 1);
  const std::string blocks = "transformer.h.";
  for (const auto& item : named_parameters()) {
    const std::string& name = item.key();
    size_t group = 0;
    if (name.compare(0, blocks.size(), blocks) == 0)
      group = std::stoul(name.substr(blocks.size(), name.find('.', blocks.size()))) + 1;
    groups.at(group).push_back(name);
  }
  return groups;
}

void GPT2LMHeadImpl::set_forward_hooks(std::shared_ptr<ForwardHooks> hooks) {
  hooks_ = hooks;
  transformer->hooks = std::move(hooks);
}

std::string GPT2LMHeadImpl::hf_parameter_name(const std::string& key) const {
  return gpt2_parameter_name(key, config_.tie_word_embeddings);
}

nlohmann::json GPT2LMHeadImpl::hf_config(at::ScalarType dtype) const {
  GPT2Config config = config_;
  config.torch_dtype = dtype == at::kBFloat16 ? "bfloat16" : "float32";
  return config.to_json();
}

std::vector<std::string> GPT2LMHeadImpl::lora_target_names() const {
  return {"c_attn", "c_proj", "c_fc"};
}

}  // namespace tailor
