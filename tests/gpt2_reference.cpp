#include "gpt2_reference.h"

#include <cmath>
#include <stdexcept>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

namespace tailor::reference {
namespace {

constexpr double kPi = 3.14159265358979323846;

// A weight read from the map as doubles, with its shape.
struct Array {
  std::vector<double> v;
  std::vector<int64_t> shape;
  double at(int64_t i, int64_t j) const { return v[i * shape[1] + j]; }
};

Array fetch(const TensorMap& weights, const std::string& name) {
  for (const std::string& key : {"transformer." + name, name}) {
    auto it = weights.find(key);
    if (it != weights.end()) return {to_doubles(it->second), it->second.sizes().vec()};
  }
  throw std::runtime_error("reference: missing weight " + name);
}

// x [T, C] -> LayerNorm over C with population variance, as torch.nn.LayerNorm.
std::vector<double> layer_norm(const std::vector<double>& x, int64_t T, int64_t C, const Array& w,
                               const Array& b, double eps) {
  std::vector<double> y(x.size());
  for (int64_t t = 0; t < T; ++t) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < C; ++c)
      mean += x[t * C + c];
    mean /= C;
    for (int64_t c = 0; c < C; ++c)
      var += (x[t * C + c] - mean) * (x[t * C + c] - mean);
    var /= C;
    const double inv = 1.0 / std::sqrt(var + eps);
    for (int64_t c = 0; c < C; ++c)
      y[t * C + c] = (x[t * C + c] - mean) * inv * w.v[c] + b.v[c];
  }
  return y;
}

// HF Conv1D: x [T, in] @ W [in, out] + b [out].
std::vector<double> conv1d(const std::vector<double>& x, int64_t T, const Array& W,
                           const Array& b) {
  const int64_t in = W.shape[0], out = W.shape[1];
  std::vector<double> y(T * out);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t o = 0; o < out; ++o) {
      double sum = b.v[o];
      for (int64_t i = 0; i < in; ++i)
        sum += x[t * in + i] * W.at(i, o);
      y[t * out + o] = sum;
    }
  }
  return y;
}

double activation(const std::string& name, double x) {
  if (name == "gelu_new" || name == "gelu_pytorch_tanh") {
    return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / kPi) * (x + 0.044715 * x * x * x)));
  }
  if (name == "gelu") return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
  if (name == "relu") return x > 0 ? x : 0.0;
  throw std::runtime_error("reference: unknown activation " + name);
}

}  // namespace

std::vector<double> to_doubles(const at::Tensor& tensor) {
  const at::Tensor t = tensor.detach().to(at::kCPU).to(at::kDouble).contiguous();
  const double* data = t.data_ptr<double>();
  return std::vector<double>(data, data + t.numel());
}

std::vector<double> gpt2_logits(const GPT2Config& cfg, const TensorMap& weights,
                                const std::vector<int64_t>& ids, int64_t B, int64_t T,
                                const std::vector<int64_t>& mask,
                                const std::vector<int64_t>& positions) {
  const int64_t C = cfg.n_embd, H = cfg.n_head, D = C / H, V = cfg.vocab_size;
  const Array wte = fetch(weights, "wte.weight"), wpe = fetch(weights, "wpe.weight");
  const Array head = cfg.tie_word_embeddings ? wte : fetch(weights, "lm_head.weight");
  std::vector<double> logits(B * T * V);
  for (int64_t b = 0; b < B; ++b) {
    std::vector<double> x(T * C);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t id = ids[b * T + t];
      const int64_t pos = positions.empty() ? t : positions[b * T + t];
      for (int64_t c = 0; c < C; ++c)
        x[t * C + c] = wte.at(id, c) + wpe.at(pos, c);
    }
    for (int64_t layer = 0; layer < cfg.n_layer; ++layer) {
      const std::string p = "h." + std::to_string(layer) + ".";
      // Attention sub-block.
      const auto a = layer_norm(x, T, C, fetch(weights, p + "ln_1.weight"),
                                fetch(weights, p + "ln_1.bias"), cfg.layer_norm_epsilon);
      const auto qkv = conv1d(a, T, fetch(weights, p + "attn.c_attn.weight"),
                              fetch(weights, p + "attn.c_attn.bias"));  // [T, 3C]
      double divisor = cfg.scale_attn_weights ? std::sqrt(static_cast<double>(D)) : 1.0;
      if (cfg.scale_attn_by_inverse_layer_idx) divisor *= static_cast<double>(layer + 1);
      std::vector<double> context(T * C, 0.0);
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t i = 0; i < T; ++i) {
          std::vector<double> score(T);
          std::vector<bool> allowed(T);
          bool any = false;
          double best = -INFINITY;
          for (int64_t j = 0; j < T; ++j) {
            allowed[j] = j <= i && (mask.empty() || mask[b * T + j] != 0);
            double s = 0;
            for (int64_t d = 0; d < D; ++d) {
              s += qkv[i * 3 * C + h * D + d] * qkv[j * 3 * C + C + h * D + d];
            }
            score[j] = s / divisor;
            if (allowed[j]) {
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
              if (allowed[j]) total += prob[j] = std::exp(score[j] - best);
            }
            for (int64_t j = 0; j < T; ++j)
              prob[j] /= total;
          }
          for (int64_t d = 0; d < D; ++d) {
            double sum = 0;
            for (int64_t j = 0; j < T; ++j)
              sum += prob[j] * qkv[j * 3 * C + 2 * C + h * D + d];
            context[i * C + h * D + d] = sum;
          }
        }
      }
      const auto attn_out = conv1d(context, T, fetch(weights, p + "attn.c_proj.weight"),
                                   fetch(weights, p + "attn.c_proj.bias"));
      for (int64_t k = 0; k < T * C; ++k)
        x[k] += attn_out[k];
      // MLP sub-block.
      const auto m = layer_norm(x, T, C, fetch(weights, p + "ln_2.weight"),
                                fetch(weights, p + "ln_2.bias"), cfg.layer_norm_epsilon);
      auto f =
          conv1d(m, T, fetch(weights, p + "mlp.c_fc.weight"), fetch(weights, p + "mlp.c_fc.bias"));
      for (double& value : f)
        value = activation(cfg.activation_function, value);
      const auto g = conv1d(f, T, fetch(weights, p + "mlp.c_proj.weight"),
                            fetch(weights, p + "mlp.c_proj.bias"));
      for (int64_t k = 0; k < T * C; ++k)
        x[k] += g[k];
    }
    const auto final_hidden = layer_norm(x, T, C, fetch(weights, "ln_f.weight"),
                                         fetch(weights, "ln_f.bias"), cfg.layer_norm_epsilon);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t v = 0; v < V; ++v) {
        double sum = 0;
        for (int64_t c = 0; c < C; ++c)
          sum += final_hidden[t * C + c] * head.at(v, c);
        logits[(b * T + t) * V + v] = sum;
      }
    }
  }
  return logits;
}

std::vector<double> log_softmax_rows(const std::vector<double>& logits, int64_t V) {
  std::vector<double> out(logits.size());
  for (size_t row = 0; row * V < logits.size(); ++row) {
    double best = -INFINITY;
    for (int64_t v = 0; v < V; ++v)
      best = std::max(best, logits[row * V + v]);
    double total = 0;
    for (int64_t v = 0; v < V; ++v)
      total += std::exp(logits[row * V + v] - best);
    const double log_total = best + std::log(total);
    for (int64_t v = 0; v < V; ++v)
      out[row * V + v] = logits[row * V + v] - log_total;
  }
  return out;
}

TensorMap random_hf_weights(const GPT2Config& cfg, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto opts = at::TensorOptions().dtype(at::kDouble);
  auto normal = [&](std::vector<int64_t> shape, double stddev) {
    return at::normal(0.0, stddev, shape, gen, opts);
  };
  const int64_t C = cfg.n_embd, I = cfg.inner_dim();
  TensorMap w;
  w["wte.weight"] = normal({cfg.vocab_size, C}, 0.5);
  w["wpe.weight"] = normal({cfg.n_positions, C}, 0.5);
  auto linear = [&](const std::string& name, int64_t in, int64_t out) {
    w[name + ".weight"] = normal({in, out}, 1.0 / std::sqrt(static_cast<double>(in)));
    w[name + ".bias"] = normal({out}, 0.1);
  };
  auto norm = [&](const std::string& name) {
    w[name + ".weight"] = normal({C}, 0.1) + 1.0;
    w[name + ".bias"] = normal({C}, 0.1);
  };
  for (int64_t l = 0; l < cfg.n_layer; ++l) {
    const std::string p = "h." + std::to_string(l) + ".";
    norm(p + "ln_1");
    linear(p + "attn.c_attn", C, 3 * C);
    linear(p + "attn.c_proj", C, C);
    norm(p + "ln_2");
    linear(p + "mlp.c_fc", C, I);
    linear(p + "mlp.c_proj", I, C);
  }
  norm("ln_f");
  if (!cfg.tie_word_embeddings) w["lm_head.weight"] = normal({cfg.vocab_size, C}, 0.5);
  return w;
}

double relative_error(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) throw std::runtime_error("relative_error: size mismatch");
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    norm += b[i] * b[i];
  }
  return std::sqrt(diff) / std::sqrt(norm);
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) throw std::runtime_error("max_abs_diff: size mismatch");
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::fabs(a[i] - b[i]));
  return worst;
}

}  // namespace tailor::reference
