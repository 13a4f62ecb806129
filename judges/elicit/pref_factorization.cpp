#include "judges/elicit/pref_factorization.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
#include <string>

#include "common/error.h"
#include "common/seeded_random.h"
#include "judges/elicit/cholesky.h"
#include "judges/elicit/logistic.h"

namespace tailor::elicit {

namespace {

std::string str(int64_t v) {
  return std::to_string(v);
}

std::string str(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// A standard normal from raw engine output (Box-Muller), so that a seed gives the same start
// block on every platform (std::normal_distribution is implementation-defined).
double gaussian(std::mt19937_64& rng) {
  const double u1 = (static_cast<double>(rng() >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
  const double u2 = static_cast<double>(rng() >> 11) * 0x1.0p-53;          // [0, 1)
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// Orthonormalises the k columns of a row-major [n, k] matrix in place by modified Gram-Schmidt,
// run twice per column ("twice is enough", Giraud et al. 2005) so that the columns stay
// orthogonal to working precision. A column that is (numerically) inside the span of the earlier
// ones is replaced by the unit vector e_j farthest from that span (its distance^2 is
// 1 - sum_p m[j, p]^2 >= (n - l) / n > 0), so the result is always a full orthonormal set: a
// block larger than the matrix's rank stays usable.
void orthonormalize(std::vector<double>& m, int64_t n, int64_t k) {
  std::vector<double> c(static_cast<size_t>(n));
  const auto project_out = [&](int64_t l) {
    for (int pass = 0; pass < 2; ++pass)
      for (int64_t p = 0; p < l; ++p) {
        double proj = 0;
        for (int64_t i = 0; i < n; ++i)
          proj += m[i * k + p] * c[i];
        for (int64_t i = 0; i < n; ++i)
          c[i] -= proj * m[i * k + p];
      }
    return std::sqrt(dot(c.data(), c.data(), n));
  };
  for (int64_t l = 0; l < k; ++l) {
    for (int64_t i = 0; i < n; ++i)
      c[i] = m[i * k + l];
    const double before = std::sqrt(dot(c.data(), c.data(), n));
    double after = project_out(l);
    if (!(after > 1e-12 * before)) {
      int64_t best = 0;
      double farthest = -1;
      for (int64_t j = 0; j < n; ++j) {
        double inside = 0;
        for (int64_t p = 0; p < l; ++p)
          inside += m[j * k + p] * m[j * k + p];
        if (1 - inside > farthest) farthest = 1 - inside, best = j;
      }
      std::fill(c.begin(), c.end(), 0.0);
      c[best] = 1.0;
      after = project_out(l);
    }
    for (int64_t i = 0; i < n; ++i)
      m[i * k + l] = c[i] / after;
  }
}

// [rows, k] = A [rows, cols] * B [cols, k]; the innermost loop runs over the short block
// dimension, contiguous in both B and the result.
std::vector<double> multiply(const std::vector<double>& a, int64_t rows, int64_t cols,
                             const std::vector<double>& b, int64_t k) {
  std::vector<double> out(static_cast<size_t>(rows * k), 0.0);
  for (int64_t i = 0; i < rows; ++i) {
    double* o = out.data() + i * k;
    const double* row = a.data() + i * cols;
    for (int64_t j = 0; j < cols; ++j) {
      const double aij = row[j];
      const double* bj = b.data() + j * k;
      for (int64_t l = 0; l < k; ++l)
        o[l] += aij * bj[l];
    }
  }
  return out;
}

// [cols, k] = A^T * Q [rows, k], reading A row by row (one pass over A, as multiply()).
std::vector<double> multiply_transposed(const std::vector<double>& a, int64_t rows, int64_t cols,
                                        const std::vector<double>& q, int64_t k) {
  std::vector<double> out(static_cast<size_t>(cols * k), 0.0);
  for (int64_t i = 0; i < rows; ++i) {
    const double* qi = q.data() + i * k;
    const double* row = a.data() + i * cols;
    for (int64_t j = 0; j < cols; ++j) {
      const double aij = row[j];
      double* o = out.data() + j * k;
      for (int64_t l = 0; l < k; ++l)
        o[l] += aij * qi[l];
    }
  }
  return out;
}

// One-sided Jacobi (Hestenes 1958) on the k columns of z [n, k]: plane rotations until every
// pair of columns is orthogonal, accumulated in w [k, k] (z_in w = z_out). Afterwards z's columns
// are s_l v_l. Accurate to working precision relative to each singular value, unlike an
// eigen-solve of z^T z, which squares the condition number.
std::vector<double> jacobi_rotate(std::vector<double>& z, int64_t n, int64_t k) {
  std::vector<double> w(static_cast<size_t>(k * k), 0.0);
  for (int64_t l = 0; l < k; ++l)
    w[l * k + l] = 1.0;
  for (int sweep = 0; sweep < 100; ++sweep) {
    bool rotated = false;
    for (int64_t p = 0; p < k; ++p)
      for (int64_t q = p + 1; q < k; ++q) {
        double alpha = 0, beta = 0, gamma = 0;
        for (int64_t i = 0; i < n; ++i) {
          const double zp = z[i * k + p], zq = z[i * k + q];
          alpha += zp * zp, beta += zq * zq, gamma += zp * zq;
        }
        if (gamma == 0 || std::abs(gamma) <= 1e-15 * std::sqrt(alpha * beta)) continue;
        rotated = true;
        const double zeta = (beta - alpha) / (2 * gamma);
        const double t = (zeta >= 0 ? 1.0 : -1.0) / (std::abs(zeta) + std::hypot(1.0, zeta));
        const double c = 1 / std::sqrt(1 + t * t), s = c * t;
        for (int64_t i = 0; i < n; ++i) {
          const double zp = z[i * k + p], zq = z[i * k + q];
          z[i * k + p] = c * zp - s * zq;
          z[i * k + q] = s * zp + c * zq;
        }
        for (int64_t i = 0; i < k; ++i) {
          const double wp = w[i * k + p], wq = w[i * k + q];
          w[i * k + p] = c * wp - s * wq;
          w[i * k + q] = s * wp + c * wq;
        }
      }
    if (!rotated) break;
  }
  return w;
}

// Ritz triplets of A on the block: u [rows, k], s [k] descending, v [cols, k], all k of them.
struct BlockSvd {
  std::vector<double> u, s, v;
};

// From q [rows, k] orthonormal: z = A^T q = (q^T A)^T, its SVD z = v S w^T by Jacobi, u = q w.
BlockSvd project(const std::vector<double>& a, int64_t rows, int64_t cols,
                 const std::vector<double>& q, int64_t k) {
  std::vector<double> z = multiply_transposed(a, rows, cols, q, k);
  const std::vector<double> w = jacobi_rotate(z, cols, k);
  std::vector<double> norms(static_cast<size_t>(k));
  for (int64_t l = 0; l < k; ++l) {
    double ss = 0;
    for (int64_t j = 0; j < cols; ++j)
      ss += z[j * k + l] * z[j * k + l];
    norms[l] = std::sqrt(ss);
  }
  std::vector<int64_t> order(static_cast<size_t>(k));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t x, int64_t y) { return norms[x] > norms[y]; });
  BlockSvd out;
  out.s.resize(static_cast<size_t>(k));
  out.v.assign(static_cast<size_t>(cols * k), 0.0);
  out.u.assign(static_cast<size_t>(rows * k), 0.0);
  for (int64_t l = 0; l < k; ++l) {
    const int64_t o = order[l];
    out.s[l] = norms[o];
    if (norms[o] > 0)
      for (int64_t j = 0; j < cols; ++j)
        out.v[j * k + l] = z[j * k + o] / norms[o];
    for (int64_t i = 0; i < rows; ++i) {
      double acc = 0;
      for (int64_t m = 0; m < k; ++m)
        acc += q[i * k + m] * w[m * k + o];
      out.u[i * k + l] = acc;
    }
  }
  // Zero (and round-off sized) singular values leave v's columns empty or not quite orthogonal;
  // completing them keeps the factor orthonormal without touching the leading ones.
  orthonormalize(out.v, cols, k);
  return out;
}

// max over l < rank of |y_l - s_l u_l|, y = A v: how far the leading triplets are from exact.
double residual(const std::vector<double>& y, const BlockSvd& b, int64_t rows, int64_t k,
                int64_t rank) {
  double worst = 0;
  for (int64_t l = 0; l < rank; ++l) {
    double ss = 0;
    for (int64_t i = 0; i < rows; ++i) {
      const double d = y[i * k + l] - b.s[l] * b.u[i * k + l];
      ss += d * d;
    }
    worst = std::max(worst, std::sqrt(ss));
  }
  return worst;
}

int64_t block_size(int64_t rows, int64_t cols, int64_t rank, const SvdConfig& config) {
  return std::min(rank + config.oversampling, std::min(rows, cols));
}

std::vector<double> random_block(int64_t n, int64_t k, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<double> b(static_cast<size_t>(n * k));
  for (auto& x : b)
    x = gaussian(rng);
  orthonormalize(b, n, k);
  return b;
}

// Subspace iteration from `basis` [cols, k] (orthonormal); on return `basis` holds the last
// right Ritz vectors, the start for the next call on a nearby matrix (imputation's next step).
// With to_tolerance false it makes a single pass and skips the residual test (and its product
// with A): imputation's early steps, where the matrix moves anyway, need no converged SVD.
TruncatedSvd subspace_svd(const std::vector<double>& a, int64_t rows, int64_t cols, int64_t rank,
                          const SvdConfig& config, std::vector<double>& basis, int64_t k,
                          bool to_tolerance) {
  TruncatedSvd out;
  out.rows = rows, out.cols = cols, out.rank = rank;
  std::vector<double> y = multiply(a, rows, cols, basis, k);
  BlockSvd b;
  while (true) {
    orthonormalize(y, rows, k);
    b = project(a, rows, cols, y, k);
    ++out.iterations;
    if (!to_tolerance) break;
    y = multiply(a, rows, cols, b.v, k);
    if (residual(y, b, rows, k, rank) <= config.tolerance * b.s[0]) {
      out.converged = true;
      break;
    }
    if (out.iterations >= config.max_iterations) break;
  }
  basis = b.v;
  out.s.assign(b.s.begin(), b.s.begin() + rank);
  out.u.resize(static_cast<size_t>(rows * rank));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t l = 0; l < rank; ++l)
      out.u[i * rank + l] = b.u[i * k + l];
  out.vt.resize(static_cast<size_t>(rank * cols));
  for (int64_t l = 0; l < rank; ++l)
    for (int64_t j = 0; j < cols; ++j)
      out.vt[l * cols + j] = b.v[j * k + l];
  return out;
}

void check_matrix(const std::vector<double>& a, int64_t rows, int64_t cols, int64_t rank,
                  const char* what) {
  if (rows < 1 || cols < 1)
    throw Error("elicit", std::string(what) + ": the matrix is " + str(rows) + " x " + str(cols) +
                              ", it needs at least one row and one column");
  if (a.size() != static_cast<size_t>(rows * cols))
    throw Error("elicit", std::string(what) + ": a " + str(rows) + " x " + str(cols) +
                              " matrix needs " + str(rows * cols) + " entries, got " +
                              str(static_cast<int64_t>(a.size())));
  if (rank < 1 || rank > std::min(rows, cols))
    throw Error("elicit", std::string(what) + ": rank " + str(rank) + " is outside [1, " +
                              str(std::min(rows, cols)) + "] for a " + str(rows) + " x " +
                              str(cols) + " matrix");
}

void check_features(const PairFeatures& x) {
  if (x.pairs < 1 || x.dim < 1)
    throw Error("elicit", "pair features: " + str(x.pairs) + " pairs of dimension " + str(x.dim) +
                              ", both must be >= 1");
  if (x.values.size() != static_cast<size_t>(x.pairs * x.dim))
    throw Error("elicit", "pair features: " + str(x.pairs) + " x " + str(x.dim) + " needs " +
                              str(x.pairs * x.dim) + " values, got " +
                              str(static_cast<int64_t>(x.values.size())));
}

void check_observations(const std::vector<Observation>& observations, int64_t users,
                        int64_t pairs) {
  for (size_t n = 0; n < observations.size(); ++n) {
    const Observation& o = observations[n];
    const std::string where = "observation " + str(static_cast<int64_t>(n));
    if (o.user < 0 || o.user >= users)
      throw Error("elicit",
                  where + ": user " + str(o.user) + " is outside [0, " + str(users) + ")");
    if (o.pair < 0 || o.pair >= pairs)
      throw Error("elicit",
                  where + ": pair " + str(o.pair) + " is outside [0, " + str(pairs) + ")");
    if (o.answer != 0 && o.answer != 0.5 && o.answer != 1)
      throw Error("elicit", where + ": answer " + str(o.answer) + " is not 0, 0.5 (a tie) or 1");
  }
}

void check_model(const Factorization& model, const PairFeatures& x) {
  check_features(x);
  if (model.users < 1 || model.rank < 1)
    throw Error("elicit", "factorization: " + str(model.users) + " users at rank " +
                              str(model.rank) + ", both must be >= 1");
  if (model.dim != x.dim)
    throw Error("elicit", "factorization: the head takes features of dimension " + str(model.dim) +
                              ", the pairs have " + str(x.dim));
  if (model.lambda.size() != static_cast<size_t>(model.users * model.rank))
    throw Error("elicit", "factorization: lambda needs " + str(model.users * model.rank) +
                              " values [users, rank], got " +
                              str(static_cast<int64_t>(model.lambda.size())));
  if (model.w.size() != static_cast<size_t>(model.dim * model.rank))
    throw Error("elicit", "factorization: W needs " + str(model.dim * model.rank) +
                              " values [dim, rank], got " +
                              str(static_cast<int64_t>(model.w.size())));
}

// -log sigmoid(t), without overflow for large |t|.
double nll_of(double t) {
  return std::max(-t, 0.0) + std::log1p(std::exp(-std::abs(t)));
}

}  // namespace

void SvdConfig::validate() const {
  if (oversampling < 0)
    throw Error("elicit", "svd.oversampling must be >= 0, got " + str(oversampling));
  if (max_iterations < 1)
    throw Error("elicit", "svd.max_iterations must be >= 1, got " + str(max_iterations));
  if (!(tolerance >= 0)) throw Error("elicit", "svd.tolerance must be >= 0, got " + str(tolerance));
}

void ImputeConfig::validate() const {
  if (max_iterations < 1)
    throw Error("elicit", "impute.max_iterations must be >= 1, got " + str(max_iterations));
  if (!(tolerance >= 0))
    throw Error("elicit", "impute.tolerance must be >= 0, got " + str(tolerance));
  svd.validate();
}

void RefineConfig::validate() const {
  if (!(lambda_l2 >= 0))
    throw Error("elicit", "refine.lambda_l2 must be >= 0, got " + str(lambda_l2));
  if (!(w_l2 >= 0)) throw Error("elicit", "refine.w_l2 must be >= 0, got " + str(w_l2));
  if (!(learning_rate > 0))
    throw Error("elicit", "refine.learning_rate must be > 0, got " + str(learning_rate));
  if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1))
    throw Error("elicit", "refine.beta1 and beta2 must be in [0, 1)");
  if (!(epsilon > 0)) throw Error("elicit", "refine.epsilon must be > 0, got " + str(epsilon));
  if (steps < 0) throw Error("elicit", "refine.steps must be >= 0, got " + str(steps));
  if (batch_size < 1)
    throw Error("elicit", "refine.batch_size must be >= 1, got " + str(batch_size));
  if (log_every < 1) throw Error("elicit", "refine.log_every must be >= 1, got " + str(log_every));
}

std::vector<double> preference_matrix(int64_t users, int64_t pairs,
                                      const std::vector<Observation>& observations) {
  if (users < 1 || pairs < 1)
    throw Error("elicit", "preference matrix: " + str(users) + " users x " + str(pairs) +
                              " pairs, both must be >= 1");
  check_observations(observations, users, pairs);
  std::vector<double> sum(static_cast<size_t>(users * pairs), 0.0);
  std::vector<int64_t> count(sum.size(), 0);
  for (const auto& o : observations) {
    sum[o.user * pairs + o.pair] += 2 * o.answer - 1;
    ++count[o.user * pairs + o.pair];
  }
  for (size_t i = 0; i < sum.size(); ++i)
    sum[i] = count[i] == 0 ? std::numeric_limits<double>::quiet_NaN() : sum[i] / count[i];
  return sum;
}

TruncatedSvd truncated_svd(const std::vector<double>& a, int64_t rows, int64_t cols, int64_t rank,
                           const SvdConfig& config) {
  config.validate();
  check_matrix(a, rows, cols, rank, "truncated_svd");
  for (size_t i = 0; i < a.size(); ++i)
    if (!std::isfinite(a[i]))
      throw Error("elicit", "truncated_svd: entry (" + str(static_cast<int64_t>(i) / cols) + ", " +
                                str(static_cast<int64_t>(i) % cols) + ") is not finite");
  const int64_t k = block_size(rows, cols, rank, config);
  std::vector<double> basis = random_block(cols, k, config.seed);
  return subspace_svd(a, rows, cols, rank, config, basis, k, true);
}

LowRankFactors impute_low_rank(const std::vector<double>& matrix, int64_t rows, int64_t cols,
                               int64_t rank, const ImputeConfig& config) {
  config.validate();
  check_matrix(matrix, rows, cols, rank, "impute_low_rank");
  std::vector<double> filled(matrix);
  std::vector<int64_t> missing;
  for (size_t i = 0; i < matrix.size(); ++i) {
    if (std::isnan(matrix[i])) {
      missing.push_back(static_cast<int64_t>(i));
      filled[i] = 0;  // C = 0 is A = 0.5: no preference either way
    } else if (!std::isfinite(matrix[i])) {
      throw Error("elicit", "impute_low_rank: entry (" + str(static_cast<int64_t>(i) / cols) +
                                ", " + str(static_cast<int64_t>(i) % cols) + ") is infinite");
    }
  }
  if (missing.size() == matrix.size())
    throw Error("elicit", "impute_low_rank: the matrix has no observed entry (all " +
                              str(rows * cols) + " are NaN)");

  const int64_t k = block_size(rows, cols, rank, config.svd);
  std::vector<double> basis = random_block(cols, k, config.svd.seed);
  LowRankFactors out;
  out.rows = rows, out.cols = cols, out.rank = rank;
  TruncatedSvd svd;
  // Single passes while the missing entries still move by tolerance or more; once a step moves
  // them less, the next SVD runs to its own tolerance, and convergence is declared only on an
  // exact SVD whose reconstruction moves them less than tolerance too.
  bool settling = missing.empty();  // nothing to impute: one exact SVD
  while (out.iterations < config.max_iterations) {
    svd = subspace_svd(filled, rows, cols, rank, config.svd, basis, k, settling);
    ++out.iterations;
    out.last_change = 0;
    for (const int64_t idx : missing) {
      const int64_t i = idx / cols, j = idx % cols;
      double r = 0;
      for (int64_t l = 0; l < rank; ++l)
        r += svd.u[i * rank + l] * svd.s[l] * svd.vt[l * cols + j];
      out.last_change = std::max(out.last_change, std::abs(r - filled[idx]));
      filled[idx] = r;
    }
    if (settling && svd.converged && out.last_change < config.tolerance) {
      out.converged = true;
      break;
    }
    settling = out.last_change < config.tolerance;
  }
  out.singular_values = svd.s;
  out.left.resize(static_cast<size_t>(rows * rank));
  out.right.resize(static_cast<size_t>(rank * cols));
  for (int64_t l = 0; l < rank; ++l) {
    const double root = std::sqrt(svd.s[l]);
    for (int64_t i = 0; i < rows; ++i)
      out.left[i * rank + l] = svd.u[i * rank + l] * root;
    for (int64_t j = 0; j < cols; ++j)
      out.right[l * cols + j] = root * svd.vt[l * cols + j];
  }
  return out;
}

std::vector<double> fit_linear_head(const PairFeatures& x, const std::vector<double>& phi,
                                    int64_t J, double l2) {
  check_features(x);
  if (!(l2 > 0)) throw Error("elicit", "fit_linear_head: l2 must be > 0, got " + str(l2));
  if (J < 1) throw Error("elicit", "fit_linear_head: J must be >= 1, got " + str(J));
  if (phi.size() != static_cast<size_t>(J * x.pairs))
    throw Error("elicit", "fit_linear_head: phi [J, pairs] needs " + str(J * x.pairs) +
                              " values for J = " + str(J) + " and " + str(x.pairs) +
                              " pairs, got " + str(static_cast<int64_t>(phi.size())));
  const int64_t D = x.dim, M = x.pairs;
  std::vector<double> gram(static_cast<size_t>(D * D), 0.0);
  std::vector<double> w(static_cast<size_t>(D * J), 0.0);  // X^T Phi^T, then solved in place
  for (int64_t m = 0; m < M; ++m) {
    const double* xm = x.values.data() + m * D;
    for (int64_t a = 0; a < D; ++a) {
      for (int64_t b = 0; b <= a; ++b)
        gram[a * D + b] += xm[a] * xm[b];
      for (int64_t j = 0; j < J; ++j)
        w[a * J + j] += xm[a] * phi[j * M + m];
    }
  }
  for (int64_t a = 0; a < D; ++a) {
    gram[a * D + a] += l2;
    for (int64_t b = 0; b < a; ++b)
      gram[b * D + a] = gram[a * D + b];
  }
  const std::vector<double> l = cholesky(gram, D, "the ridge system X^T X + l2 I");
  for (int64_t j = 0; j < J; ++j)
    cholesky_solve_in_place(l, D, w.data() + j, J);
  return w;
}

double factorization_loss(const Factorization& model, const PairFeatures& x,
                          const std::vector<Observation>& observations, double lambda_l2,
                          double w_l2, Factorization* gradient) {
  check_model(model, x);
  check_observations(observations, model.users, x.pairs);
  const int64_t J = model.rank, D = model.dim;

  // phi_m = W^T x_m once per distinct pair: a minibatch touches a few, the full set all of them.
  std::vector<int64_t> slot(static_cast<size_t>(x.pairs), -1);
  std::vector<int64_t> used;
  int64_t n = 0;
  for (const auto& o : observations) {
    if (o.answer == 0.5) continue;
    ++n;
    if (slot[o.pair] < 0) {
      slot[o.pair] = static_cast<int64_t>(used.size());
      used.push_back(o.pair);
    }
  }
  std::vector<double> phi(used.size() * J, 0.0);
  for (size_t s = 0; s < used.size(); ++s) {
    const double* xm = x.values.data() + used[s] * D;
    for (int64_t d = 0; d < D; ++d)
      for (int64_t j = 0; j < J; ++j)
        phi[s * J + j] += xm[d] * model.w[d * J + j];
  }

  if (gradient) {
    gradient->users = model.users, gradient->dim = D, gradient->rank = J;
    gradient->lambda.assign(model.lambda.size(), 0.0);
    gradient->w.assign(model.w.size(), 0.0);
  }
  std::vector<double> per_pair(gradient ? used.size() * J : 0, 0.0);  // sum of g lambda_u
  double loss = 0;
  for (const auto& o : observations) {
    if (o.answer == 0.5) continue;
    const double c = 2 * o.answer - 1;
    const double* lam = model.lambda.data() + o.user * J;
    const double* ph = phi.data() + slot[o.pair] * J;
    const double z = dot(lam, ph, J);
    loss += nll_of(c * z) + lambda_l2 * dot(lam, lam, J);
    if (!gradient) continue;
    const double g = -c * sigmoid(-c * z) / n;  // d loss / d z
    double* gl = gradient->lambda.data() + o.user * J;
    double* gp = per_pair.data() + slot[o.pair] * J;
    for (int64_t j = 0; j < J; ++j) {
      gl[j] += g * ph[j] + 2 * lambda_l2 * lam[j] / n;
      gp[j] += g * lam[j];
    }
  }
  if (n > 0) loss /= n;
  loss += w_l2 * dot(model.w.data(), model.w.data(), D * J);
  if (gradient) {
    for (size_t s = 0; s < used.size(); ++s) {
      const double* xm = x.values.data() + used[s] * D;
      for (int64_t d = 0; d < D; ++d)
        for (int64_t j = 0; j < J; ++j)
          gradient->w[d * J + j] += xm[d] * per_pair[s * J + j];
    }
    for (size_t i = 0; i < model.w.size(); ++i)
      gradient->w[i] += 2 * w_l2 * model.w[i];
  }
  return loss;
}

RefineResult refine_factorization(const Factorization& init, const PairFeatures& x,
                                  const std::vector<Observation>& observations,
                                  const RefineConfig& config) {
  config.validate();
  check_model(init, x);
  check_observations(observations, init.users, x.pairs);
  std::vector<Observation> active;
  for (const auto& o : observations)
    if (o.answer != 0.5) active.push_back(o);
  if (active.empty())
    throw Error("elicit", "refine_factorization: no observation with a preference (" +
                              str(static_cast<int64_t>(observations.size())) + " given, all ties)");

  RefineResult out;
  out.model = init;
  Factorization& model = out.model;
  const auto log_nll = [&](int64_t step) {
    out.trajectory.push_back({step, factorization_loss(model, x, active, 0, 0)});
  };
  log_nll(0);

  // Adam over both parameter blocks at once (the same update rule, element by element).
  std::vector<double*> params = {model.lambda.data(), model.w.data()};
  const std::vector<size_t> sizes = {model.lambda.size(), model.w.size()};
  std::vector<std::vector<double>> m1 = {std::vector<double>(sizes[0], 0.0),
                                         std::vector<double>(sizes[1], 0.0)};
  std::vector<std::vector<double>> m2 = m1;

  std::mt19937_64 rng(config.seed);
  const uint64_t N = active.size();
  std::vector<size_t> order(N);
  std::iota(order.begin(), order.end(), 0);
  uint64_t next = N;  // the first draw shuffles
  std::vector<Observation> batch;
  Factorization grad;
  for (int64_t step = 1; step <= config.steps; ++step) {
    batch.clear();
    for (int64_t b = 0; b < std::min<int64_t>(config.batch_size, N); ++b) {
      if (next == N) {  // a new epoch: Fisher-Yates with platform-independent draws
        for (uint64_t i = N - 1; i > 0; --i)
          std::swap(order[i], order[uniform_below(rng, i + 1)]);
        next = 0;
      }
      batch.push_back(active[order[next++]]);
    }
    factorization_loss(model, x, batch, config.lambda_l2, config.w_l2, &grad);
    const std::vector<const double*> grads = {grad.lambda.data(), grad.w.data()};
    const double c1 = 1 - std::pow(config.beta1, static_cast<double>(step));
    const double c2 = 1 - std::pow(config.beta2, static_cast<double>(step));
    for (size_t p = 0; p < params.size(); ++p)
      for (size_t i = 0; i < sizes[p]; ++i) {
        const double g = grads[p][i];
        m1[p][i] = config.beta1 * m1[p][i] + (1 - config.beta1) * g;
        m2[p][i] = config.beta2 * m2[p][i] + (1 - config.beta2) * g * g;
        params[p][i] -=
            config.learning_rate * (m1[p][i] / c1) / (std::sqrt(m2[p][i] / c2) + config.epsilon);
      }
    if (step % config.log_every == 0 || step == config.steps) log_nll(step);
  }
  return out;
}

}  // namespace tailor::elicit
