#include "mistral_reference.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "gpt2_reference.h"  // to_doubles

namespace tailor::reference {
namespace {

// A [rows, cols] weight read from the map as doubles.
struct Matrix {
  std::vector<double> v;
  int64_t rows = 0, cols = 0;
  double at(int64_t i, int64_t j) const { return v[i * cols + j]; }
};

Matrix fetch_matrix(const TensorMap& weights, const std::string& name) {
  auto it = weights.find(name);
  if (it == weights.end()) throw std::runtime_error("mistral reference: missing weight " + name);
  const at::Tensor& t = it->second;
  Matrix m{to_doubles(t), t.size(0), t.dim() > 1 ? t.size(1) : 1};
  return m;
}

// The weight of nn.Linear module `module` ([out, in]), with a LoRA pair folded in when the
// adapter has one: W + scaling * B A.
Matrix linear_weight(const TensorMap& weights, const std::string& module,
                     const MistralLoraAdapter* adapter) {
  Matrix W = fetch_matrix(weights, module + ".weight");
  if (!adapter) return W;
  const std::string key = "base_model.model." + module;
  const bool has_a = adapter->tensors.count(key + ".lora_A.weight") > 0;
  const bool has_b = adapter->tensors.count(key + ".lora_B.weight") > 0;
  if (has_a != has_b) throw std::runtime_error("mistral reference: half a LoRA pair at " + key);
  if (!has_a) return W;
  const Matrix A = fetch_matrix(adapter->tensors, key + ".lora_A.weight");   // [r, in]
  const Matrix Bm = fetch_matrix(adapter->tensors, key + ".lora_B.weight");  // [out, r]
  if (A.cols != W.cols || Bm.rows != W.rows || A.rows != Bm.cols) {
    throw std::runtime_error("mistral reference: LoRA shapes do not fit " + module);
  }
  for (int64_t o = 0; o < W.rows; ++o) {
    for (int64_t i = 0; i < W.cols; ++i) {
      double sum = 0;
      for (int64_t k = 0; k < A.rows; ++k)
        sum += Bm.at(o, k) * A.at(k, i);
      W.v[o * W.cols + i] += adapter->scaling * sum;
    }
  }
  return W;
}

// x [T, in] -> x W^T [T, out] for W [out, in].
std::vector<double> linear(const std::vector<double>& x, int64_t T, const Matrix& W) {
  std::vector<double> y(T * W.rows);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t o = 0; o < W.rows; ++o) {
      double sum = 0;
      for (int64_t i = 0; i < W.cols; ++i)
        sum += x[t * W.cols + i] * W.at(o, i);
      y[t * W.rows + o] = sum;
    }
  }
  return y;
}

// RMSNorm over C: w * x / sqrt(mean(x^2) + eps).
std::vector<double> rms_norm(const std::vector<double>& x, int64_t T, int64_t C, const Matrix& w,
                             double eps) {
  std::vector<double> y(x.size());
  for (int64_t t = 0; t < T; ++t) {
    double mean_square = 0;
    for (int64_t c = 0; c < C; ++c)
      mean_square += x[t * C + c] * x[t * C + c];
    mean_square /= static_cast<double>(C);
    const double inv = 1.0 / std::sqrt(mean_square + eps);
    for (int64_t c = 0; c < C; ++c)
      y[t * C + c] = w.v[c] * x[t * C + c] * inv;
  }
  return y;
}

// Rotate-half RoPE in place on `heads` heads of size D in rows [T, heads * D]: dimension d < D/2
// pairs with d + D/2 and turns by angle position * theta^(-2d/D).
void rotate(std::vector<double>& x, int64_t T, int64_t heads, int64_t D,
            const std::vector<int64_t>& position, double theta) {
  const int64_t half = D / 2;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t h = 0; h < heads; ++h) {
      double* row = &x[t * heads * D + h * D];
      for (int64_t d = 0; d < half; ++d) {
        const double angle = static_cast<double>(position[t]) /
                             std::pow(theta, static_cast<double>(2 * d) / static_cast<double>(D));
        const double c = std::cos(angle), s = std::sin(angle);
        const double first = row[d], second = row[d + half];
        row[d] = first * c - second * s;
        row[d + half] = second * c + first * s;
      }
    }
  }
}

}  // namespace

std::vector<double> mistral_logits(const MistralConfig& cfg, const TensorMap& weights,
                                   const std::vector<int64_t>& ids, int64_t B, int64_t T,
                                   const std::vector<int64_t>& mask,
                                   const std::vector<int64_t>& positions,
                                   const MistralLoraAdapter* adapter) {
  const int64_t C = cfg.hidden_size, H = cfg.num_attention_heads, K = cfg.num_key_value_heads;
  const int64_t D = cfg.head_dim ? *cfg.head_dim : C / H, V = cfg.vocab_size;
  const int64_t group = H / K;  // query heads per key/value head
  const Matrix embed = fetch_matrix(weights, "model.embed_tokens.weight");
  const Matrix head = cfg.tie_word_embeddings ? embed : linear_weight(weights, "lm_head", adapter);
  std::vector<double> logits(B * T * V);
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int64_t> position(T);
    for (int64_t t = 0; t < T; ++t)
      position[t] = positions.empty() ? t : positions[b * T + t];
    std::vector<double> x(T * C);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t c = 0; c < C; ++c)
        x[t * C + c] = embed.at(ids[b * T + t], c);
    }
    for (int64_t layer = 0; layer < cfg.num_hidden_layers; ++layer) {
      const std::string p = "model.layers." + std::to_string(layer) + ".";
      // Attention sub-layer.
      const auto a =
          rms_norm(x, T, C, fetch_matrix(weights, p + "input_layernorm.weight"), cfg.rms_norm_eps);
      auto q = linear(a, T, linear_weight(weights, p + "self_attn.q_proj", adapter));  // [T, H D]
      auto k = linear(a, T, linear_weight(weights, p + "self_attn.k_proj", adapter));  // [T, K D]
      const auto v = linear(a, T, linear_weight(weights, p + "self_attn.v_proj", adapter));
      rotate(q, T, H, D, position, cfg.rope_theta);
      rotate(k, T, K, D, position, cfg.rope_theta);
      std::vector<double> context(T * H * D, 0.0);
      for (int64_t h = 0; h < H; ++h) {
        const int64_t kv = h / group;
        for (int64_t i = 0; i < T; ++i) {
          std::vector<double> score(T);
          std::vector<bool> visible(T);
          bool any = false;
          double best = -INFINITY;
          for (int64_t j = 0; j < T; ++j) {
            visible[j] = j <= i && (mask.empty() || mask[b * T + j] != 0) &&
                         (!cfg.sliding_window || i - j < *cfg.sliding_window);
            double s = 0;
            for (int64_t d = 0; d < D; ++d)
              s += q[i * H * D + h * D + d] * k[j * K * D + kv * D + d];
            score[j] = s / std::sqrt(static_cast<double>(D));
            if (visible[j]) {
              any = true;
              best = std::max(best, score[j]);
            }
          }
          std::vector<double> prob(T, 0.0);
          if (!any) {
            for (int64_t j = 0; j < T; ++j)
              prob[j] = 1.0 / static_cast<double>(T);
          } else {
            double total = 0;
            for (int64_t j = 0; j < T; ++j) {
              if (visible[j]) total += prob[j] = std::exp(score[j] - best);
            }
            for (int64_t j = 0; j < T; ++j)
              prob[j] /= total;
          }
          for (int64_t d = 0; d < D; ++d) {
            double sum = 0;
            for (int64_t j = 0; j < T; ++j)
              sum += prob[j] * v[j * K * D + kv * D + d];
            context[i * H * D + h * D + d] = sum;
          }
        }
      }
      const auto attn_out =
          linear(context, T, linear_weight(weights, p + "self_attn.o_proj", adapter));
      for (int64_t n = 0; n < T * C; ++n)
        x[n] += attn_out[n];
      // SwiGLU sub-layer: down(silu(gate(m)) * up(m)), silu(z) = z / (1 + e^-z).
      const auto m = rms_norm(x, T, C, fetch_matrix(weights, p + "post_attention_layernorm.weight"),
                              cfg.rms_norm_eps);
      const auto gate = linear(m, T, linear_weight(weights, p + "mlp.gate_proj", adapter));
      const auto up = linear(m, T, linear_weight(weights, p + "mlp.up_proj", adapter));
      std::vector<double> inner(gate.size());
      for (size_t n = 0; n < gate.size(); ++n)
        inner[n] = gate[n] / (1.0 + std::exp(-gate[n])) * up[n];
      const auto down = linear(inner, T, linear_weight(weights, p + "mlp.down_proj", adapter));
      for (int64_t n = 0; n < T * C; ++n)
        x[n] += down[n];
    }
    const auto final_hidden =
        rms_norm(x, T, C, fetch_matrix(weights, "model.norm.weight"), cfg.rms_norm_eps);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t vocab = 0; vocab < V; ++vocab) {
        double sum = 0;
        for (int64_t c = 0; c < C; ++c)
          sum += final_hidden[t * C + c] * head.at(vocab, c);
        logits[(b * T + t) * V + vocab] = sum;
      }
    }
  }
  return logits;
}

TensorMap random_mistral_weights(const MistralConfig& cfg, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto opts = at::TensorOptions().dtype(at::kDouble);
  auto normal = [&](std::vector<int64_t> shape, double stddev) {
    return at::normal(0.0, stddev, shape, gen, opts);
  };
  const int64_t C = cfg.hidden_size, I = cfg.intermediate_size;
  const int64_t D = cfg.head_dim ? *cfg.head_dim : C / cfg.num_attention_heads;
  const int64_t HD = cfg.num_attention_heads * D, KD = cfg.num_key_value_heads * D;
  TensorMap w;
  w["model.embed_tokens.weight"] = normal({cfg.vocab_size, C}, 1.0);
  auto linear = [&](const std::string& name, int64_t in, int64_t out) {
    w[name + ".weight"] = normal({out, in}, 1.0 / std::sqrt(static_cast<double>(in)));
  };
  auto norm = [&](const std::string& name) { w[name + ".weight"] = normal({C}, 0.1) + 1.0; };
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    linear(p + "self_attn.q_proj", C, HD);
    linear(p + "self_attn.k_proj", C, KD);
    linear(p + "self_attn.v_proj", C, KD);
    linear(p + "self_attn.o_proj", HD, C);
    linear(p + "mlp.gate_proj", C, I);
    linear(p + "mlp.up_proj", C, I);
    linear(p + "mlp.down_proj", I, C);
    norm(p + "input_layernorm");
    norm(p + "post_attention_layernorm");
  }
  norm("model.norm");
  if (!cfg.tie_word_embeddings) linear("lm_head", C, cfg.vocab_size);
  return w;
}

}  // namespace tailor::reference
