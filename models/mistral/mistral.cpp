#include "models/mistral/mistral.h"

#include "models/core/attention_mask.h"
#include "models/core/lora.h"

#include <cctype>
#include <cmath>
#include <limits>
#include <map>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/shape_string.h"

namespace tailor {
namespace {

const char* kMistralScope = "mistral";

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Rotary inv_freq buffers that old checkpoints carry (`model.layers.N.self_attn.rotary_emb.
// inv_freq`) or that a state_dict with non-persistent buffers kept (`model.rotary_emb.inv_freq`).
bool is_rotary_buffer(const std::string& name) {
  if (name == "model.rotary_emb.inv_freq") return true;
  const std::string prefix = "model.layers.";
  if (name.rfind(prefix, 0) != 0) return false;
  size_t pos = prefix.size();
  const size_t digits_begin = pos;
  while (pos < name.size() && std::isdigit(static_cast<unsigned char>(name[pos])))
    ++pos;
  return pos != digits_begin && name.substr(pos) == ".self_attn.rotary_emb.inv_freq";
}

// Where HF upcasts to float32 (RMSNorm, rotary angles, softmax): float32, or float64 for a
// float64 model.
at::ScalarType upcast_type(at::ScalarType dtype) {
  return dtype == at::kDouble ? at::kDouble : at::kFloat;
}

// HF MistralRotaryEmbedding: inv_freq = 1 / theta^(arange(0, D, 2) / D) [D/2];
// freqs = positions x inv_freq [B, T, D/2]; emb = cat(freqs, freqs) [B, T, D]; cos/sin in the
// upcast type, then rounded to the model's dtype.
RotaryAngles rotary_angles(const at::Tensor& positions, int64_t head_dim, double theta,
                           at::ScalarType dtype) {
  const at::ScalarType compute = upcast_type(dtype);
  const at::Tensor exponent =
      at::arange(0, head_dim, 2, positions.options().dtype(at::kLong)).to(compute) /
      static_cast<double>(head_dim);
  const at::Tensor inv_freq = at::reciprocal(at::pow(theta, exponent));     // [D/2]
  const at::Tensor freqs = positions.to(compute).unsqueeze(-1) * inv_freq;  // [B, T, D/2]
  const at::Tensor emb = at::cat({freqs, freqs}, -1);                       // [B, T, D]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

// x [B, n, T, D] rotated: x cos + rotate_half(x) sin, rotate_half(x) = cat(-x2, x1) (HF
// apply_rotary_pos_emb). cos/sin [B or 1, T, D].
at::Tensor apply_rotary(const at::Tensor& x, const RotaryAngles& rope) {
  const int64_t half = x.size(-1) / 2;
  const at::Tensor rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * rope.cos.unsqueeze(1) + rotated * rope.sin.unsqueeze(1);
}

// [B, K, S, D] -> [B, K G, S, D], each key/value head repeated for its G query heads (HF
// repeat_kv: head h of the queries reads key/value head h / G).
at::Tensor repeat_kv(const at::Tensor& x, int64_t groups) {
  if (groups == 1) return x;
  const int64_t B = x.size(0), K = x.size(1), S = x.size(2), D = x.size(3);
  return x.unsqueeze(2).expand({B, K, groups, S, D}).reshape({B, K * groups, S, D});
}

std::string dtype_config_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat:
      return "float32";
    case at::kBFloat16:
      return "bfloat16";
    case at::kHalf:
      return "float16";
    case at::kDouble:
      return "float64";
    default:
      throw Error(kMistralScope,
                  std::string("no config.json torch_dtype for ") + c10::toString(dtype));
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
MistralRMSNormImpl::MistralRMSNormImpl(int64_t hidden_size, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({hidden_size}));
}

at::Tensor MistralRMSNormImpl::forward(const at::Tensor& x) {
  const at::ScalarType input_dtype = x.scalar_type();
  at::Tensor h = x.to(upcast_type(input_dtype));
  const at::Tensor variance = h.pow(2).mean(-1, /*keepdim=*/true);
  h = h * at::rsqrt(variance + eps_);
  return weight * h.to(input_dtype);
}

// ---------------------------------------------------------------------------------------------
MistralAttentionImpl::MistralAttentionImpl(const MistralConfig& config, int64_t layer_idx)
    : layer_idx_(layer_idx),
      num_heads_(config.num_attention_heads),
      num_kv_heads_(config.num_key_value_heads),
      head_dim_(config.attention_head_dim()),
      attention_dropout_(config.attention_dropout) {
  const int64_t C = config.hidden_size, HD = num_heads_ * head_dim_, KD = num_kv_heads_ * head_dim_;
  q_proj = register_module("q_proj", Linear(C, HD, WeightLayout::kLinear, false));
  k_proj = register_module("k_proj", Linear(C, KD, WeightLayout::kLinear, false));
  v_proj = register_module("v_proj", Linear(C, KD, WeightLayout::kLinear, false));
  o_proj = register_module("o_proj", Linear(HD, C, WeightLayout::kLinear, false));
}

at::Tensor MistralAttentionImpl::forward(const at::Tensor& x, const RotaryAngles& rope,
                                         const at::Tensor& blocked, KvCache* cache) {
  const int64_t B = x.size(0), T = x.size(1), H = num_heads_, K = num_kv_heads_, D = head_dim_;
  at::Tensor q = q_proj(x).view({B, T, H, D}).transpose(1, 2);  // [B, H, T, D]
  at::Tensor k = k_proj(x).view({B, T, K, D}).transpose(1, 2);  // [B, K, T, D]
  at::Tensor v = v_proj(x).view({B, T, K, D}).transpose(1, 2);  // [B, K, T, D]
  q = apply_rotary(q, rope);
  k = apply_rotary(k, rope);
  if (cache) std::tie(k, v) = cache->append(layer_idx_, k, v);  // [B, K, S, D]
  k = repeat_kv(k, H / K);                                      // [B, H, S, D]
  v = repeat_kv(v, H / K);
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(D));
  scores = scores.masked_fill(blocked, lowest_value(scores.scalar_type()));  // [B, H, T, S]
  // HF: softmax(dtype=float32).to(query dtype).
  at::Tensor probs = at::softmax(scores, -1, upcast_type(scores.scalar_type())).to(q.scalar_type());
  if (attention_dropout_ > 0.0) probs = at::dropout(probs, attention_dropout_, is_training());
  const at::Tensor context = at::matmul(probs, v).transpose(1, 2).reshape({B, T, H * D});
  return o_proj(context);
}

// ---------------------------------------------------------------------------------------------
MistralMLPImpl::MistralMLPImpl(const MistralConfig& config) {
  const int64_t C = config.hidden_size, I = config.intermediate_size;
  gate_proj = register_module("gate_proj", Linear(C, I, WeightLayout::kLinear, false));
  up_proj = register_module("up_proj", Linear(C, I, WeightLayout::kLinear, false));
  down_proj = register_module("down_proj", Linear(I, C, WeightLayout::kLinear, false));
}

at::Tensor MistralMLPImpl::forward(const at::Tensor& x) {
  return down_proj(at::silu(gate_proj(x)) * up_proj(x));
}

// ---------------------------------------------------------------------------------------------
MistralDecoderLayerImpl::MistralDecoderLayerImpl(const MistralConfig& config, int64_t layer_idx) {
  // Registration order = HF's attribute order, so named_parameters() list in HF's order.
  self_attn = register_module("self_attn", MistralAttention(config, layer_idx));
  mlp = register_module("mlp", MistralMLP(config));
  input_layernorm =
      register_module("input_layernorm", MistralRMSNorm(config.hidden_size, config.rms_norm_eps));
  post_attention_layernorm = register_module(
      "post_attention_layernorm", MistralRMSNorm(config.hidden_size, config.rms_norm_eps));
}

at::Tensor MistralDecoderLayerImpl::forward(const at::Tensor& x, const RotaryAngles& rope,
                                            const at::Tensor& blocked, KvCache* cache) {
  const at::Tensor hidden = x + self_attn(input_layernorm(x), rope, blocked, cache);
  return hidden + mlp(post_attention_layernorm(hidden));
}

// ---------------------------------------------------------------------------------------------
MistralModelImpl::MistralModelImpl(const MistralConfig& config) : config_(config) {
  auto options = torch::nn::EmbeddingOptions(config.vocab_size, config.hidden_size);
  if (config.pad_token_id) options.padding_idx(*config.pad_token_id);
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(options));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.num_hidden_layers; ++i)
    layers->push_back(MistralDecoderLayer(config, i));
  norm = register_module("norm", MistralRMSNorm(config.hidden_size, config.rms_norm_eps));
}

at::Tensor MistralModelImpl::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                     const at::Tensor& position_ids, KvCache* cache) {
  if (input_ids.dim() != 2 || !at::isIntegralType(input_ids.scalar_type(), false)) {
    throw Error(kMistralScope, "input_ids must be an integer tensor [B, T], got " +
                                   std::string(c10::toString(input_ids.scalar_type())) + " " +
                                   shape_string(input_ids.sizes()));
  }
  if (cache && cache->num_layers() != config_.num_hidden_layers) {
    throw Error(kMistralScope, "the KV cache has " + std::to_string(cache->num_layers()) +
                                   " layers, the model " +
                                   std::to_string(config_.num_hidden_layers));
  }
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  const int64_t P = cache ? cache->length() : 0, S = P + T;  // P read once, before layer 0
  if (S > config_.max_position_embeddings) {
    throw Error(kMistralScope,
                "sequence length " + std::to_string(S) +
                    (P ? " (" + std::to_string(P) + " cached + " + std::to_string(T) + " new)"
                       : std::string()) +
                    " exceeds max_position_embeddings " +
                    std::to_string(config_.max_position_embeddings));
  }
  const at::Tensor ids = input_ids.to(at::kLong);
  if (ids.numel() > 0) {
    // A clear message instead of embedding's bare index error.
    const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    if (lo < 0 || hi >= config_.vocab_size) {
      throw Error(kMistralScope, "token id " + std::to_string(lo < 0 ? lo : hi) +
                                     " is outside the vocabulary [0, " +
                                     std::to_string(config_.vocab_size) + ")");
    }
  }
  at::Tensor positions;  // [B or 1, T]
  if (position_ids.defined()) {
    if (position_ids.sizes() != input_ids.sizes() &&
        position_ids.sizes() != at::IntArrayRef{1, T}) {
      throw Error(kMistralScope, "position_ids shape " + shape_string(position_ids.sizes()) +
                                     " does not match input_ids " +
                                     shape_string(input_ids.sizes()));
    }
    positions = position_ids.to(ids.device(), at::kLong);
    if (positions.numel() > 0 && positions.min().item<int64_t>() < 0) {
      throw Error(kMistralScope, "position_ids must be >= 0");
    }
  } else {
    positions = at::arange(P, S, ids.options()).unsqueeze(0);  // HF: cache_position
  }

  // blocked [1 or B, 1, T, S]: key j is hidden from new token i (absolute index P + i) when it
  // lies in the future, outside the sliding window, or is padding.
  const at::Tensor query_index = at::arange(P, S, ids.options()).unsqueeze(1);  // [T, 1]
  const at::Tensor key_index = at::arange(S, ids.options()).unsqueeze(0);       // [1, S]
  at::Tensor blocked = key_index > query_index;
  if (config_.sliding_window) {
    // HF sliding_window_overlay: allowed iff kv_idx > q_idx - sliding_window.
    blocked = blocked.logical_or(query_index - key_index >= *config_.sliding_window);
  }
  blocked = blocked.view({1, 1, T, S});
  if (attention_mask.defined()) {
    if (attention_mask.dim() != 2 || attention_mask.size(0) != B || attention_mask.size(1) != S) {
      throw Error(kMistralScope, "attention_mask shape " + shape_string(attention_mask.sizes()) +
                                     " does not match [B, P + T] = [" + std::to_string(B) + ", " +
                                     std::to_string(S) + "]");
    }
    blocked = blocked.logical_or(attention_mask.to(ids.device()).eq(0).view({B, 1, 1, S}));
  }

  at::Tensor hidden = embed_tokens(ids);  // [B, T, C]
  const RotaryAngles rope = rotary_angles(positions, config_.attention_head_dim(),
                                          config_.rope_theta, hidden.scalar_type());
  for (size_t i = 0; i < layers->size(); ++i) {
    const int group = static_cast<int>(i) + 1;
    if (hooks) hooks->enter(group, hidden);
    hidden = (*layers)[i]->as<MistralDecoderLayerImpl>()->forward(hidden, rope, blocked, cache);
    if (hooks) hooks->exit(group, hidden);
  }
  return norm(hidden);
}

// ---------------------------------------------------------------------------------------------
MistralForCausalLMImpl::MistralForCausalLMImpl(const MistralConfig& config, bool init)
    : config_(config) {
  config_.validate();
  model = register_module("model", MistralModel(config_));
  if (!config_.tie_word_embeddings) {
    lm_head = register_module(
        "lm_head", Linear(config_.hidden_size, config_.vocab_size, WeightLayout::kLinear, false));
  }
  if (init) init_weights();
}

void MistralForCausalLMImpl::init_parameter(const std::string& name, at::Tensor& p) const {
  // HF MistralPreTrainedModel._init_weights: nn.Linear and nn.Embedding weights
  // N(0, initializer_range) (the padding_idx row zeroed), MistralRMSNorm weights 1.
  torch::NoGradGuard no_grad;
  if (ends_with(name, "layernorm.weight") || name == "model.norm.weight") {
    p.fill_(1.0);
    return;
  }
  p.normal_(0.0, config_.initializer_range);
  if (name == "model.embed_tokens.weight" && config_.pad_token_id) {
    const int64_t V = config_.vocab_size, pad = *config_.pad_token_id;
    p[pad < 0 ? pad + V : pad].zero_();
  }
}

at::Tensor MistralForCausalLMImpl::hidden_states(const at::Tensor& input_ids,
                                                 const at::Tensor& attention_mask,
                                                 const at::Tensor& position_ids, KvCache* cache) {
  if (hooks_) hooks_->enter(0, input_ids);
  at::Tensor hidden = model(input_ids, attention_mask, position_ids, cache);
  if (hooks_) hooks_->exit(0, hidden);
  return hidden;
}

at::Tensor MistralForCausalLMImpl::lm_logits(const at::Tensor& hidden) {
  if (lm_head) return lm_head(hidden);
  return at::linear(hidden, model->embed_tokens->weight);  // tied: hidden E^T, [B, T, V]
}

at::Tensor MistralForCausalLMImpl::forward(const at::Tensor& input_ids,
                                           const at::Tensor& attention_mask,
                                           const at::Tensor& position_ids, KvCache* cache) {
  if (hooks_) hooks_->enter(0, input_ids);
  at::Tensor logits = lm_logits(model(input_ids, attention_mask, position_ids, cache));
  if (hooks_) hooks_->exit(0, logits);
  return logits;
}

std::vector<std::vector<std::string>> MistralForCausalLMImpl::hook_groups() const {
  std::vector<std::vector<std::string>> groups(static_cast<size_t>(config_.num_hidden_layers) + 1);
  const std::string prefix = "model.layers.";
  for (const auto& item : named_parameters()) {
    const std::string& name = item.key();
    size_t group = 0;
    if (name.compare(0, prefix.size(), prefix) == 0)
      group = std::stoul(name.substr(prefix.size(), name.find('.', prefix.size()))) + 1;
    groups.at(group).push_back(name);
  }
  return groups;
}

void MistralForCausalLMImpl::set_forward_hooks(std::shared_ptr<ForwardHooks> hooks) {
  hooks_ = hooks;
  model->hooks = std::move(hooks);
}

std::string MistralForCausalLMImpl::hf_parameter_name(const std::string& key) const {
  std::string name = key;
  if (name.rfind("model.", 0) != 0 && name.rfind("lm_head.", 0) != 0) name = "model." + name;
  if (is_rotary_buffer(name)) return "";
  if (name == "lm_head.weight" && config_.tie_word_embeddings) return "";
  return name;
}

nlohmann::json MistralForCausalLMImpl::hf_config(at::ScalarType dtype) const {
  MistralConfig config = config_;
  config.torch_dtype = dtype_config_name(dtype);
  return config.to_json();
}

std::vector<std::string> MistralForCausalLMImpl::lora_target_names() const {
  std::vector<std::string> names = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                    "gate_proj", "up_proj", "down_proj"};
  if (lm_head) names.push_back("lm_head");
  return names;
}

}  // namespace tailor
