#include "train/optim/grad_surgery.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <torch/torch.h>

#include "common/error.h"
#include "common/seeded_random.h"
#include "common/shape_string.h"

namespace tailor {

const EnumNames<GradSurgery>& grad_surgery_names() {
  static const EnumNames<GradSurgery> table = {
      {"none", GradSurgery::kNone}, {"pcgrad", GradSurgery::kPcgrad}, {"mgda", GradSurgery::kMgda}};
  return table;
}

const std::string& to_string(GradSurgery surgery) {
  return enum_name(grad_surgery_names(), surgery);
}

namespace {

// Elements per float64 chunk: bounds the widened temporary to 8 MB whatever P and T are.
constexpr int64_t kChunkElements = int64_t{1} << 20;

int64_t chunk_columns(int64_t tasks) {
  return std::max<int64_t>(1, kChunkElements / tasks);
}

void check_grads(const at::Tensor& grads, const char* what) {
  if (!grads.defined() || grads.dim() != 2 || grads.size(0) < 1) {
    throw Error("grad_surgery", std::string(what) + ": expected grads [T, P] with T >= 1, got " +
                                    (grads.defined() ? shape_string(grads.sizes()) : "undefined"));
  }
  if (grads.scalar_type() != at::kFloat && grads.scalar_type() != at::kDouble) {
    throw Error("grad_surgery", std::string(what) + ": expected float32 or float64 grads, got " +
                                    std::string(c10::toString(grads.scalar_type())));
  }
}

// M = grads grads^T, [T, T] row-major, summed in float64 over column chunks.
std::vector<double> gram_matrix(const at::Tensor& grads) {
  at::NoGradGuard no_grad;
  const int64_t tasks = grads.size(0);
  const int64_t width = grads.size(1);
  const int64_t step = chunk_columns(tasks);
  at::Tensor gram = at::zeros({tasks, tasks}, grads.options().dtype(at::kDouble));
  for (int64_t begin = 0; begin < width; begin += step) {
    const at::Tensor chunk = grads.narrow(1, begin, std::min(step, width - begin)).to(at::kDouble);
    gram.add_(chunk.mm(chunk.t()));
  }
  gram = gram.cpu().contiguous();
  return std::vector<double>(gram.data_ptr<double>(), gram.data_ptr<double>() + tasks * tasks);
}

// sum_t weights[t] * grads[t], [P] in grads' dtype, accumulated in float64 per column chunk.
at::Tensor combine_rows(const at::Tensor& grads, const std::vector<double>& weights) {
  at::NoGradGuard no_grad;
  const int64_t tasks = grads.size(0);
  const int64_t width = grads.size(1);
  const int64_t step = chunk_columns(tasks);
  const at::Tensor w = at::tensor(weights, at::kDouble).to(grads.device()).reshape({1, tasks});
  at::Tensor out = at::empty({width}, grads.options());
  for (int64_t begin = 0; begin < width; begin += step) {
    const int64_t len = std::min(step, width - begin);
    const at::Tensor chunk = grads.narrow(1, begin, len).to(at::kDouble);
    out.narrow(0, begin, len).copy_(w.mm(chunk).reshape({len}));
  }
  return out;
}

// The two-task min-norm step (Sener & Koltun 2018, Algorithm 1): the weight c in [lo, hi] on v1
// minimising |c v1 + (1 - c) v2|^2, given v1.v1, v1.v2, v2.v2. `degenerate` is returned when
// |v1 - v2| == 0 (every c gives the same point).
double min_norm_two(double v1v1, double v1v2, double v2v2, double lo, double hi,
                    double degenerate) {
  const double diff = v1v1 + v2v2 - 2.0 * v1v2;  // |v1 - v2|^2
  if (!(diff > 0.0)) return degenerate;
  return std::clamp((v2v2 - v1v2) / diff, lo, hi);
}

}  // namespace

at::Tensor pcgrad(const at::Tensor& grads, std::mt19937_64& rng, const std::string& reduction) {
  check_grads(grads, "pcgrad");
  if (reduction != "sum" && reduction != "mean") {
    throw Error("grad_surgery",
                "pcgrad: reduction must be \"sum\" or \"mean\", got \"" + reduction + "\"");
  }
  const int64_t tasks = grads.size(0);
  const std::vector<double> gram = gram_matrix(grads);
  auto m = [&](int64_t a, int64_t b) { return gram[static_cast<size_t>(a * tasks + b)]; };

  // Every projected g_i stays a combination of the original rows:
  //   g_i' = g_i - sum_j coef[i][j] g_j,  so  g_i'.g_j = M_ij - sum_k coef[i][k] M_kj.
  std::vector<std::vector<double>> coef(static_cast<size_t>(tasks),
                                        std::vector<double>(static_cast<size_t>(tasks), 0.0));
  std::vector<int64_t> others;
  for (int64_t i = 0; i < tasks; ++i) {
    others.clear();
    for (int64_t j = 0; j < tasks; ++j) {
      if (j != i) others.push_back(j);
    }
    // Fisher–Yates (Knuth, TAOCP vol. 2, Algorithm P) from the ascending list j != i.
    for (int64_t k = static_cast<int64_t>(others.size()) - 1; k > 0; --k) {
      const auto r = static_cast<int64_t>(uniform_below(rng, static_cast<uint64_t>(k) + 1));
      std::swap(others[static_cast<size_t>(k)], others[static_cast<size_t>(r)]);
    }
    std::vector<double>& ci = coef[static_cast<size_t>(i)];
    for (const int64_t j : others) {
      const double norm_sq = m(j, j);
      if (norm_sq == 0.0) continue;
      double dot = m(i, j);
      for (int64_t k = 0; k < tasks; ++k)
        dot -= ci[static_cast<size_t>(k)] * m(k, j);
      if (dot < 0.0) ci[static_cast<size_t>(j)] += dot / norm_sq;
    }
  }

  // sum_i g_i' = sum_j (1 - sum_i coef[i][j]) g_j.
  std::vector<double> weights(static_cast<size_t>(tasks), 1.0);
  for (int64_t i = 0; i < tasks; ++i) {
    for (int64_t j = 0; j < tasks; ++j) {
      weights[static_cast<size_t>(j)] -= coef[static_cast<size_t>(i)][static_cast<size_t>(j)];
    }
  }
  if (reduction == "mean") {
    for (double& w : weights)
      w /= static_cast<double>(tasks);
  }
  return combine_rows(grads, weights);
}

std::vector<double> mgda_weights(const at::Tensor& grads, int max_iter, double tol) {
  check_grads(grads, "mgda_weights");
  if (max_iter < 1) {
    throw Error("grad_surgery",
                "mgda_weights: max_iter must be >= 1, got " + std::to_string(max_iter));
  }
  if (!(tol >= 0.0)) {
    throw Error("grad_surgery", "mgda_weights: tol must be >= 0, got " + std::to_string(tol));
  }
  const int64_t tasks = grads.size(0);
  if (tasks == 1) return {1.0};
  const std::vector<double> gram = gram_matrix(grads);
  auto m = [&](int64_t a, int64_t b) { return gram[static_cast<size_t>(a * tasks + b)]; };
  if (tasks == 2) {
    const double c = min_norm_two(m(0, 0), m(0, 1), m(1, 1), 0.0, 1.0, 0.5);
    return {c, 1.0 - c};
  }

  const auto n = static_cast<size_t>(tasks);
  std::vector<double> alpha(n, 1.0 / static_cast<double>(tasks));
  std::vector<double> m_alpha(n);
  for (int iter = 0; iter < max_iter; ++iter) {
    for (int64_t a = 0; a < tasks; ++a) {
      double s = 0.0;
      for (int64_t b = 0; b < tasks; ++b)
        s += m(a, b) * alpha[static_cast<size_t>(b)];
      m_alpha[static_cast<size_t>(a)] = s;
    }
    const double v1v1 = std::inner_product(alpha.begin(), alpha.end(), m_alpha.begin(), 0.0);
    // Frank–Wolfe vertex: the task whose gradient has the smallest inner product with the
    // current point (first on ties).
    const auto toward =
        static_cast<int64_t>(std::min_element(m_alpha.begin(), m_alpha.end()) - m_alpha.begin());
    // Away vertex: the active task with the largest one.
    int64_t away = -1;
    for (int64_t k = 0; k < tasks; ++k) {
      const auto kk = static_cast<size_t>(k);
      if (alpha[kk] > 0.0 && alpha[kk] < 1.0 &&
          (away < 0 || m_alpha[kk] > m_alpha[static_cast<size_t>(away)])) {
        away = k;
      }
    }
    const double toward_gap = v1v1 - m_alpha[static_cast<size_t>(toward)];
    const double away_gap = away < 0 ? 0.0 : m_alpha[static_cast<size_t>(away)] - v1v1;
    // Both steps are the two-task problem between the current point (weight c) and one vertex
    // e_v (weight 1 - c): c in [0, 1] moves toward e_v; c in [1, 1 / (1 - alpha_v)] moves away
    // from it, up to dropping v from the support. A degenerate line (point == g_v) keeps alpha.
    const bool away_step = away_gap > toward_gap;
    const int64_t v = away_step ? away : toward;
    const auto vv = static_cast<size_t>(v);
    const double c_max = away_step ? 1.0 / (1.0 - alpha[vv]) : 1.0;
    const double c = min_norm_two(v1v1, m_alpha[vv], m(v, v), away_step ? 1.0 : 0.0, c_max, 1.0);
    double change = 0.0;
    for (size_t k = 0; k < n; ++k) {
      double next = c * alpha[k] + (k == vv ? 1.0 - c : 0.0);
      if (k == vv && away_step && c == c_max) next = 0.0;  // drop step: exactly off the support
      next = std::max(next, 0.0);
      change += std::abs(next - alpha[k]);
      alpha[k] = next;
    }
    if (change < tol) break;
  }
  return alpha;
}

at::Tensor mgda_combine(const at::Tensor& grads, const std::vector<double>& alpha) {
  check_grads(grads, "mgda_combine");
  const int64_t tasks = grads.size(0);
  if (static_cast<int64_t>(alpha.size()) != tasks) {
    throw Error("grad_surgery", "mgda_combine: " + std::to_string(alpha.size()) + " weights for " +
                                    std::to_string(tasks) + " tasks");
  }
  std::vector<double> weights(alpha);
  for (double& w : weights)
    w *= static_cast<double>(tasks);
  return combine_rows(grads, weights);
}

at::Tensor flatten_grads(const std::vector<at::Tensor>& params) {
  at::NoGradGuard no_grad;
  if (params.empty()) return at::zeros({0}, at::kFloat);
  const at::Device device = params.front().device();
  std::vector<at::Tensor> pieces;
  pieces.reserve(params.size());
  for (const auto& p : params) {
    const at::Tensor& g = p.grad();
    if (g.defined()) {
      pieces.push_back(g.detach().reshape({-1}).to(device, at::kFloat));
    } else {
      pieces.push_back(
          at::zeros({p.numel()}, at::TensorOptions().dtype(at::kFloat).device(device)));
    }
  }
  return at::cat(pieces);
}

void assign_flat_grad(const std::vector<at::Tensor>& params, const at::Tensor& flat) {
  at::NoGradGuard no_grad;
  int64_t total = 0;
  for (const auto& p : params)
    total += p.numel();
  if (!flat.defined() || flat.dim() != 1 || flat.numel() != total) {
    throw Error("grad_surgery", "assign_flat_grad: expected a flat gradient [" +
                                    std::to_string(total) + "], got " +
                                    (flat.defined() ? shape_string(flat.sizes()) : "undefined"));
  }
  int64_t offset = 0;
  for (const auto& p : params) {
    const int64_t n = p.numel();
    const at::Tensor slice = flat.narrow(0, offset, n).reshape(p.sizes());
    offset += n;
    at::Tensor& g = p.mutable_grad();
    if (g.defined()) {
      g.copy_(slice);
    } else {
      // clone(): .to() may return a view of `flat` when dtype and device already match.
      g = slice.to(p.device(), p.scalar_type()).clone(at::MemoryFormat::Contiguous);
    }
  }
}

}  // namespace tailor
