// PReF's training-time factorisation (Algorithm 1 of the PReF paper): user i's reward is
// r_i(x, y) = lambda_i . phi(x, y) over J shared base rewards, and
// P(user i prefers y1 to y2) = sigmoid(lambda_i . phi(x, y1, y2)), phi(x, y1, y2) the difference.
// Training runs in three steps:
//   1. the users x pairs answer matrix, in centred form C = 2A - 1 (first preferred +1, second
//      preferred -1, a tie 0; missing entries start at 0, i.e. A = 0.5), is factorised at rank J
//      by iterated low-rank imputation: Lambda = U Sigma^1/2, Phi = Sigma^1/2 V^T. Centring makes
//      a pair with its answers swapped a column of opposite sign, so it lands on -phi as the model
//      says, and keeps the constant 0.5 of A out of the top singular vector. Note E[C] =
//      2 sigmoid(z) - 1 = tanh(z / 2): the product starts at about half the logit z; step 3 fits
//      the scale.
//   2. a linear head W [D, J] on frozen backbone features is fitted to Phi by ridge regression:
//      phi(x, y1, y2) = W^T (h(x, y1) - h(x, y2));
//   3. Lambda and W are refined jointly by L2-regularised logistic MLE with Adam on minibatches.
// Plain float64 loops, no BLAS: the matrices are ~1000 users x ~5000 pairs at J ~6.
#pragma once

#include <cstdint>
#include <vector>

namespace tailor::elicit {

// ---- Step 1: the answer matrix and its rank-J factorisation --------------------------------

// One training answer: user `user` compared pair `pair`; answer 1 when the pair's first
// completion was preferred, 0 when the second was, 0.5 for a tie (a tie carries no likelihood
// term in step 3).
struct Observation {
  int64_t user = 0;
  int64_t pair = 0;
  double answer = 0;
};

// C = 2A - 1, row-major [users, pairs], NaN where a user did not answer a pair. A user who
// answered a pair more than once gets the mean of the answers' 2A - 1.
std::vector<double> preference_matrix(int64_t users, int64_t pairs,
                                      const std::vector<Observation>& observations);

// Block subspace iteration (randomised range finder, Halko, Martinsson & Tropp 2011, with power
// iterations run to convergence): a block of rank + oversampling vectors, re-orthonormalised
// every half-step, and an exact SVD of the small projected matrix by one-sided Jacobi.
struct SvdConfig {
  int64_t oversampling = 10;     // extra block vectors; convergence goes as (s_{k+1} / s_rank)^it
  int64_t max_iterations = 100;  // passes over the matrix (one A and one A^T product each)
  double tolerance = 1e-10;      // stop when |A v_i - s_i u_i| <= tolerance * s_1, i < rank
  uint64_t seed = 0;             // of the Gaussian start block
  void validate() const;         // throws naming the field
};

// The leading `rank` singular triplets of a row-major [rows, cols] matrix: s descending, u's
// columns and vt's rows orthonormal (completed arbitrarily past the matrix's own rank).
struct TruncatedSvd {
  int64_t rows = 0, cols = 0, rank = 0;
  std::vector<double> u;   // [rows, rank]
  std::vector<double> s;   // [rank], descending, >= 0
  std::vector<double> vt;  // [rank, cols]
  int64_t iterations = 0;  // passes taken
  bool converged = false;  // the residual test passed within max_iterations
};

// 1 <= rank <= min(rows, cols); a.size() == rows * cols; finite entries.
TruncatedSvd truncated_svd(const std::vector<double>& a, int64_t rows, int64_t cols, int64_t rank,
                           const SvdConfig& config = {});

struct ImputeConfig {
  int64_t max_iterations = 100;  // SVDs of the filled-in matrix
  double tolerance = 1e-6;       // stop when every missing entry moved less than this
  SvdConfig svd;                 // each SVD starts from the previous one's subspace
  void validate() const;
};

// matrix = left * right, the rank-J factors of the filled-in matrix.
struct LowRankFactors {
  int64_t rows = 0, cols = 0, rank = 0;
  std::vector<double> left;             // [rows, rank] = U Sigma^1/2
  std::vector<double> right;            // [rank, cols] = Sigma^1/2 V^T
  std::vector<double> singular_values;  // [rank], descending
  int64_t iterations = 0;               // SVDs taken (1 when nothing is missing)
  double last_change = 0;               // largest move of a missing entry in the last iteration
  bool converged = false;               // last_change < tolerance within max_iterations
};

// Hard imputation (Mazumder, Hastie & Tibshirani 2010, at a fixed rank): NaN entries are missing
// and start at 0; each iteration takes the rank-J SVD of the filled-in matrix and replaces the
// missing entries by its reconstruction. The observed entries are never changed. While the
// missing entries still move by tolerance or more, an iteration's SVD is a single subspace pass
// from the previous one's (the matrix moves anyway); convergence is declared only after an SVD
// run to svd.tolerance moved them less than tolerance. A row or column with no observed entry is
// allowed (it is imputed); a matrix with none at all is an error. Not converging within
// max_iterations is not an error: `converged` says so.
LowRankFactors impute_low_rank(const std::vector<double>& matrix, int64_t rows, int64_t cols,
                               int64_t rank, const ImputeConfig& config = {});

// ---- Step 2: the linear feature head ---------------------------------------------------------

// The pairs' frozen feature differences h(x, y1) - h(x, y2), row-major [pairs, dim].
struct PairFeatures {
  int64_t pairs = 0, dim = 0;
  std::vector<double> values;
};

// W [dim, J] = argmin |X W - Phi^T|^2 + l2 |W|^2 = (X^T X + l2 I)^-1 X^T Phi^T, by Cholesky, with
// X the pair features and phi = LowRankFactors::right [J, pairs] (not transposed). l2 > 0.
std::vector<double> fit_linear_head(const PairFeatures& x, const std::vector<double>& phi,
                                    int64_t J, double l2);

// ---- Step 3: joint refinement ------------------------------------------------------------------

// The model: P(user u prefers pair m's first completion) = sigmoid(lambda_u . W^T x_m).
struct Factorization {
  int64_t users = 0, dim = 0, rank = 0;
  std::vector<double> lambda;  // [users, rank]
  std::vector<double> w;       // [dim, rank]
};

// Over the observations S that are not ties (n = |S|):
//   (1 / n) sum_{s in S} [ -log sigmoid(c_s lambda_u . W^T x_m) + lambda_l2 |lambda_u|^2 ]
//     + w_l2 |W|^2,
// c_s = 2 answer - 1. The user term rides with each observation, so a minibatch's loss is an
// unbiased estimate of the full one. With no such observation the loss is w_l2 |W|^2. When
// `gradient` is given it receives d loss / d lambda and d loss / d W (same shapes as `model`).
double factorization_loss(const Factorization& model, const PairFeatures& x,
                          const std::vector<Observation>& observations, double lambda_l2,
                          double w_l2, Factorization* gradient = nullptr);

struct RefineConfig {
  double lambda_l2 = 0.02;  // the paper's weight on the user vectors
  double w_l2 = 1e-4;       // a small one on the head
  double learning_rate = 1e-3;
  double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8;  // Adam's
  int64_t steps = 500;
  int64_t batch_size = 32;  // minibatches drawn without replacement, reshuffled every epoch
  int64_t log_every = 50;   // the full mean NLL is logged at step 0, every log_every, and the end
  uint64_t seed = 0;        // of the shuffles, drawn the same way on every platform
  void validate() const;
};

struct LossPoint {
  int64_t step = 0;  // updates applied before the measurement
  double nll = 0;    // mean -log likelihood over every non-tie observation, no L2 terms
};

struct RefineResult {
  Factorization model;
  std::vector<LossPoint> trajectory;
};

// Adam on factorization_loss over minibatches of the non-tie observations, from `init` (e.g.
// Lambda = LowRankFactors::left and W = fit_linear_head(...)). At least one non-tie observation.
RefineResult refine_factorization(const Factorization& init, const PairFeatures& x,
                                  const std::vector<Observation>& observations,
                                  const RefineConfig& config = {});

}  // namespace tailor::elicit
