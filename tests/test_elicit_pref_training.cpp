// PReF's training-time factorisation (judges/elicit/pref_factorization.h), against references
// built here: matrices planted from orthonormal factors made by Gram-Schmidt in this file, a
// planted low-rank matrix with hidden entries, the 2x2 ridge normal equations in closed form,
// central finite differences of the loss, and a planted PReF model whose answers are sampled
// here and whose true accuracy on held-out pairs is the bar for the trained one.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "judges/elicit/pref_factorization.h"

namespace tailor::elicit {
namespace {

using Matrix = std::vector<double>;  // row-major

Matrix gaussian_matrix(int64_t rows, int64_t cols, std::mt19937_64& rng, double scale = 1.0) {
  std::normal_distribution<double> normal(0.0, scale);
  Matrix m(static_cast<size_t>(rows * cols));
  for (auto& x : m)
    x = normal(rng);
  return m;
}

// `cols` orthonormal columns of length `rows` from Gaussian ones: classical Gram-Schmidt, twice.
Matrix orthonormal_columns(int64_t rows, int64_t cols, std::mt19937_64& rng) {
  Matrix q = gaussian_matrix(rows, cols, rng);
  for (int64_t c = 0; c < cols; ++c) {
    for (int pass = 0; pass < 2; ++pass)
      for (int64_t p = 0; p < c; ++p) {
        double proj = 0;
        for (int64_t i = 0; i < rows; ++i)
          proj += q[i * cols + p] * q[i * cols + c];
        for (int64_t i = 0; i < rows; ++i)
          q[i * cols + c] -= proj * q[i * cols + p];
      }
    double norm = 0;
    for (int64_t i = 0; i < rows; ++i)
      norm += q[i * cols + c] * q[i * cols + c];
    for (int64_t i = 0; i < rows; ++i)
      q[i * cols + c] /= std::sqrt(norm);
  }
  return q;
}

// sum over l < n of s_l q1_l q2_l^T, q1 [rows, >= n] and q2 [cols, >= n] by columns.
Matrix planted(const Matrix& q1, int64_t q1_cols, const Matrix& q2, int64_t q2_cols,
               const std::vector<double>& s, int64_t rows, int64_t cols, int64_t n) {
  Matrix a(static_cast<size_t>(rows * cols), 0.0);
  for (int64_t l = 0; l < n; ++l)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j)
        a[i * cols + j] += s[l] * q1[i * q1_cols + l] * q2[j * q2_cols + l];
  return a;
}

// The largest |(F^T F - I)_ij| for F's `n` columns (by_rows: F's n rows) of length `len`.
double orthonormality_error(const Matrix& f, int64_t len, int64_t n, bool by_rows) {
  const auto at = [&](int64_t v, int64_t i) { return by_rows ? f[v * len + i] : f[i * n + v]; };
  double worst = 0;
  for (int64_t a = 0; a < n; ++a)
    for (int64_t b = 0; b < n; ++b) {
      double d = 0;
      for (int64_t i = 0; i < len; ++i)
        d += at(a, i) * at(b, i);
      worst = std::max(worst, std::abs(d - (a == b ? 1.0 : 0.0)));
    }
  return worst;
}

Matrix reconstruct(const TruncatedSvd& svd) {
  Matrix a(static_cast<size_t>(svd.rows * svd.cols), 0.0);
  for (int64_t l = 0; l < svd.rank; ++l)
    for (int64_t i = 0; i < svd.rows; ++i)
      for (int64_t j = 0; j < svd.cols; ++j)
        a[i * svd.cols + j] += svd.u[i * svd.rank + l] * svd.s[l] * svd.vt[l * svd.cols + j];
  return a;
}

double max_abs_difference(const Matrix& a, const Matrix& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

// The message of the tailor::Error that `f` throws ("" when it throws none).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_ERROR(statement, substring)                                                 \
  do {                                                                                     \
    const std::string message = error_of([&] { statement; });                              \
    EXPECT_NE(message.find(substring), std::string::npos)                                  \
        << #statement << " threw \"" << message << "\", expected \"" << substring << "\""; \
  } while (0)

TEST(PrefTraining, SvdReturnsThePlantedSingularValuesAndVectors) {
  std::mt19937_64 rng(11);
  const int64_t rows = 30, cols = 20;
  const Matrix q1 = orthonormal_columns(rows, cols, rng);
  const Matrix q2 = orthonormal_columns(cols, cols, rng);
  std::vector<double> s(cols);
  for (int64_t l = 0; l < cols; ++l)
    s[l] = 10 * std::pow(0.7, static_cast<double>(l));  // a full spectrum: the tail is not zero
  const Matrix a = planted(q1, cols, q2, cols, s, rows, cols, cols);

  // A block of 7 for rank 5: the tail (s_8 / s_5 = 0.34 per pass) must be iterated away.
  SvdConfig config;
  config.oversampling = 2;
  const TruncatedSvd svd = truncated_svd(a, rows, cols, 5, config);
  std::cout << "rank 5 of a full 30 x 20 spectrum: " << svd.iterations << " passes\n";
  EXPECT_TRUE(svd.converged);
  for (int64_t l = 0; l < 5; ++l) {
    EXPECT_NEAR(svd.s[l], s[l], 1e-9 * s[l]) << l;
    double align_u = 0, align_v = 0;  // |<u_l, q1_l>| and |<v_l, q2_l>|: 1 up to sign
    for (int64_t i = 0; i < rows; ++i)
      align_u += svd.u[i * 5 + l] * q1[i * cols + l];
    for (int64_t j = 0; j < cols; ++j)
      align_v += svd.vt[l * cols + j] * q2[j * cols + l];
    EXPECT_NEAR(std::abs(align_u), 1.0, 1e-9) << l;
    EXPECT_NEAR(std::abs(align_v), 1.0, 1e-9) << l;
  }
  EXPECT_LT(orthonormality_error(svd.u, rows, 5, false), 1e-12);
  EXPECT_LT(orthonormality_error(svd.vt, cols, 5, true), 1e-12);
  EXPECT_LT(max_abs_difference(reconstruct(svd), planted(q1, cols, q2, cols, s, rows, cols, 5)),
            1e-9 * s[0]);

  // Full rank reconstructs the matrix itself.
  const TruncatedSvd full = truncated_svd(a, rows, cols, cols);
  EXPECT_LT(max_abs_difference(reconstruct(full), a), 1e-12 * s[0]);
  EXPECT_NEAR(full.s[cols - 1], s[cols - 1], 1e-9 * s[0]);

  // A rank-2 matrix asked for rank 4: two zero singular values, factors still orthonormal.
  const Matrix low = planted(q1, cols, q2, cols, s, rows, cols, 2);
  const TruncatedSvd padded = truncated_svd(low, rows, cols, 4);
  EXPECT_NEAR(padded.s[0], s[0], 1e-12 * s[0]);
  EXPECT_NEAR(padded.s[1], s[1], 1e-12 * s[0]);
  EXPECT_LT(padded.s[2], 1e-12 * s[0]);
  EXPECT_LT(padded.s[3], 1e-12 * s[0]);
  EXPECT_LT(orthonormality_error(padded.u, rows, 4, false), 1e-12);
  EXPECT_LT(orthonormality_error(padded.vt, cols, 4, true), 1e-12);
  // ... and asked for every singular value: 18 of the 20 factor columns must be completed.
  const TruncatedSvd all = truncated_svd(low, rows, cols, cols);
  EXPECT_LT(all.s[2], 1e-12 * s[0]);
  EXPECT_LT(orthonormality_error(all.u, rows, cols, false), 1e-12);
  EXPECT_LT(orthonormality_error(all.vt, cols, cols, true), 1e-12);
  EXPECT_LT(max_abs_difference(reconstruct(all), low), 1e-12 * s[0]);
}

TEST(PrefTraining, ImputationRecoversTheHiddenEntriesOfAPlantedRank3Matrix) {
  std::mt19937_64 rng(5);
  const int64_t rows = 40, cols = 60, rank = 3;
  const Matrix f = gaussian_matrix(rows, rank, rng), g = gaussian_matrix(cols, rank, rng);
  Matrix truth(static_cast<size_t>(rows * cols), 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      for (int64_t l = 0; l < rank; ++l)
        truth[i * cols + j] += f[i * rank + l] * g[j * rank + l];
  Matrix seen = truth;
  std::bernoulli_distribution hide(0.3);
  int64_t hidden = 0;
  for (auto& x : seen)
    if (hide(rng)) x = std::nan(""), ++hidden;
  ASSERT_GT(hidden, 600);  // ~30% of 2400

  ImputeConfig config;
  config.tolerance = 1e-12;
  config.max_iterations = 2000;
  const LowRankFactors fit = impute_low_rank(seen, rows, cols, rank, config);
  Matrix product(truth.size(), 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      for (int64_t l = 0; l < rank; ++l)
        product[i * cols + j] += fit.left[i * rank + l] * fit.right[l * cols + j];
  double hidden_error = 0;
  for (size_t i = 0; i < truth.size(); ++i)
    if (std::isnan(seen[i])) hidden_error = std::max(hidden_error, std::abs(product[i] - truth[i]));
  std::cout << hidden << " of " << rows * cols << " entries hidden: recovered to " << hidden_error
            << " in " << fit.iterations << " iterations\n";
  EXPECT_TRUE(fit.converged);
  // Hard imputation converges linearly: with the last step under 1e-12 the distance left to the
  // fixed point is that step over (1 - rate); 1e-6 leaves room for a rate up to 1 - 1e-6.
  EXPECT_LT(hidden_error, 1e-6);
  EXPECT_LT(max_abs_difference(product, truth), 1e-6);  // the observed entries too
  EXPECT_GT(fit.iterations, 2);                         // it did have to iterate

  // An empty row and an empty column are imputed (as no preference, 0), not an error.
  Matrix gaps = seen;
  for (int64_t j = 0; j < cols; ++j)
    gaps[7 * cols + j] = std::nan("");
  for (int64_t i = 0; i < rows; ++i)
    gaps[i * cols + 9] = std::nan("");
  const LowRankFactors sparse = impute_low_rank(gaps, rows, cols, rank, config);
  for (int64_t l = 0; l < rank; ++l) {
    EXPECT_NEAR(sparse.left[7 * rank + l], 0.0, 1e-9);
    EXPECT_NEAR(sparse.right[l * cols + 9], 0.0, 1e-9);
  }
}

TEST(PrefTraining, AnswerMatrixIsCentredSoSwappedPairsGetOppositeFeatures) {
  // 0 -> -1, 1 -> +1, a tie -> 0, two answers -> their mean, nothing -> NaN.
  const Matrix c = preference_matrix(
      2, 3, {{0, 0, 1.0}, {0, 1, 0.0}, {0, 2, 0.5}, {1, 0, 1.0}, {1, 0, 0.0}, {1, 1, 1.0}});
  EXPECT_EQ(c[0], 1.0);
  EXPECT_EQ(c[1], -1.0);
  EXPECT_EQ(c[2], 0.0);
  EXPECT_EQ(c[3], 0.0);
  EXPECT_EQ(c[4], 1.0);
  EXPECT_TRUE(std::isnan(c[5]));

  // Pair 1 is pair 0 with its completions swapped: every user's answer is the other one. Its
  // feature column must come out as exactly the opposite (the uncentred A would give 1 - A).
  std::mt19937_64 rng(3);
  const int64_t users = 25, pairs = 30;
  std::bernoulli_distribution coin(0.5), seen(0.8);
  std::vector<Observation> obs;
  for (int64_t u = 0; u < users; ++u) {
    for (int64_t m = 2; m < pairs; ++m)
      if (seen(rng)) obs.push_back({u, m, coin(rng) ? 1.0 : 0.0});
    if (seen(rng)) {
      const double a = coin(rng) ? 1.0 : 0.0;
      obs.push_back({u, 0, a});
      obs.push_back({u, 1, 1 - a});
    }
  }
  ImputeConfig config;
  config.tolerance = 1e-12;
  config.max_iterations = 5000;
  const LowRankFactors fit =
      impute_low_rank(preference_matrix(users, pairs, obs), users, pairs, 3, config);
  std::cout << "swapped-pair imputation: " << fit.iterations << " iterations\n";
  EXPECT_TRUE(fit.converged);
  double size = 0;
  for (int64_t l = 0; l < 3; ++l) {
    EXPECT_NEAR(fit.right[l * pairs + 1], -fit.right[l * pairs + 0], 1e-7) << l;
    size += std::abs(fit.right[l * pairs + 0]);
  }
  EXPECT_GT(size, 0.05);  // not trivially 0 = -0
}

TEST(PrefTraining, RidgeHeadEqualsTheClosedForm2x2NormalEquations) {
  std::mt19937_64 rng(2);
  const int64_t M = 7, D = 2, J = 2;
  const double l2 = 0.3;
  PairFeatures x{M, D, gaussian_matrix(M, D, rng)};
  const Matrix phi = gaussian_matrix(J, M, rng);  // [J, M]
  // G = X^T X + l2 I, b_j = X^T phi_j, w_j = G^-1 b_j with the 2x2 inverse written out.
  double g00 = l2, g01 = 0, g11 = l2, b[2][2] = {{0, 0}, {0, 0}};
  for (int64_t m = 0; m < M; ++m) {
    const double x0 = x.values[m * 2], x1 = x.values[m * 2 + 1];
    g00 += x0 * x0, g01 += x0 * x1, g11 += x1 * x1;
    for (int64_t j = 0; j < J; ++j)
      b[j][0] += x0 * phi[j * M + m], b[j][1] += x1 * phi[j * M + m];
  }
  const double det = g00 * g11 - g01 * g01;
  const Matrix w = fit_linear_head(x, phi, J, l2);
  ASSERT_EQ(w.size(), 4u);
  for (int64_t j = 0; j < J; ++j) {
    EXPECT_NEAR(w[0 * J + j], (g11 * b[j][0] - g01 * b[j][1]) / det, 1e-12) << j;
    EXPECT_NEAR(w[1 * J + j], (-g01 * b[j][0] + g00 * b[j][1]) / det, 1e-12) << j;
  }
}

// A small model and answers: 3 users, 5 pairs, D = 4, J = 2, with a tie and repeats.
struct SmallCase {
  Factorization model;
  PairFeatures x;
  std::vector<Observation> obs;
};

SmallCase small_case() {
  std::mt19937_64 rng(9);
  SmallCase c;
  c.model = {3, 4, 2, gaussian_matrix(3, 2, rng), gaussian_matrix(4, 2, rng, 0.7)};
  c.x = {5, 4, gaussian_matrix(5, 4, rng)};
  c.obs = {{0, 0, 1.0}, {0, 3, 0.0}, {1, 0, 0.0}, {1, 2, 1.0}, {2, 4, 0.5},
           {2, 1, 1.0}, {0, 0, 1.0}, {2, 3, 0.0}, {1, 4, 1.0}};
  return c;
}

TEST(PrefTraining, LossAndGradientMatchAFormulaAndCentralDifferences) {
  SmallCase c = small_case();
  const double lambda_l2 = 0.02, w_l2 = 0.01;

  // The loss written out: mean over the 8 non-tie answers of softplus(-c z) + l2 |lambda_u|^2.
  double expected = 0;
  int n = 0;
  for (const auto& o : c.obs) {
    if (o.answer == 0.5) continue;
    double z = 0, norm2 = 0;
    for (int j = 0; j < 2; ++j) {
      double phi = 0;
      for (int d = 0; d < 4; ++d)
        phi += c.x.values[o.pair * 4 + d] * c.model.w[d * 2 + j];
      z += c.model.lambda[o.user * 2 + j] * phi;
      norm2 += c.model.lambda[o.user * 2 + j] * c.model.lambda[o.user * 2 + j];
    }
    expected += std::log(1 + std::exp(-(2 * o.answer - 1) * z)) + lambda_l2 * norm2;
    ++n;
  }
  double w2 = 0;
  for (double v : c.model.w)
    w2 += v * v;
  expected = expected / n + w_l2 * w2;

  Factorization grad;
  const double loss = factorization_loss(c.model, c.x, c.obs, lambda_l2, w_l2, &grad);
  EXPECT_NEAR(loss, expected, 1e-13);
  ASSERT_EQ(grad.lambda.size(), c.model.lambda.size());
  ASSERT_EQ(grad.w.size(), c.model.w.size());

  const double h = 1e-5;
  const auto check = [&](std::vector<double>& param, const std::vector<double>& analytic,
                         const char* name) {
    for (size_t i = 0; i < param.size(); ++i) {
      const double keep = param[i];
      param[i] = keep + h;
      const double up = factorization_loss(c.model, c.x, c.obs, lambda_l2, w_l2);
      param[i] = keep - h;
      const double down = factorization_loss(c.model, c.x, c.obs, lambda_l2, w_l2);
      param[i] = keep;
      const double fd = (up - down) / (2 * h);
      EXPECT_NEAR(analytic[i], fd, 1e-6 * std::abs(fd) + 1e-10) << name << "[" << i << "]";
      EXPECT_GT(std::abs(fd), 1e-4) << name << "[" << i << "] is too flat to test anything";
    }
  };
  check(c.model.lambda, grad.lambda, "lambda");
  check(c.model.w, grad.w, "W");
}

// The planted PReF model: users' lambda and a head W_true on random pair features.
struct PlantedModel {
  int64_t users, dim, rank;
  Matrix lambda, w;
  double logit(int64_t u, const double* x) const {
    double z = 0;
    for (int64_t j = 0; j < rank; ++j) {
      double phi = 0;
      for (int64_t d = 0; d < dim; ++d)
        phi += x[d] * w[d * rank + j];
      z += lambda[u * rank + j] * phi;
    }
    return z;
  }
};

struct HeldOut {
  double accuracy = 0, nll = 0;
};

// Accuracy (a logit of exactly 0 counts half) and mean NLL of `model` on held-out answers.
HeldOut evaluate(const PlantedModel& model, const PairFeatures& x,
                 const std::vector<Observation>& answers) {
  HeldOut out;
  for (const auto& o : answers) {
    const double z = model.logit(o.user, x.values.data() + o.pair * x.dim);
    const double c = 2 * o.answer - 1;
    out.accuracy += c * z > 0 ? 1.0 : (z == 0 ? 0.5 : 0.0);
    out.nll += std::log1p(std::exp(-c * z));
  }
  out.accuracy /= static_cast<double>(answers.size());
  out.nll /= static_cast<double>(answers.size());
  return out;
}

TEST(PrefTraining, TrainedModelPredictsHeldOutPairsNearlyAsWellAsThePlantedOne) {
  std::mt19937_64 rng(21);
  const int64_t users = 80, train_pairs = 300, test_pairs = 200, D = 8, J = 3;
  const PlantedModel truth{users, D, J, gaussian_matrix(users, J, rng, 1.0),
                           gaussian_matrix(D, J, rng, 1.0 / std::sqrt(static_cast<double>(D)))};
  const PairFeatures train{train_pairs, D, gaussian_matrix(train_pairs, D, rng, 1.5)};
  const PairFeatures test{test_pairs, D, gaussian_matrix(test_pairs, D, rng, 1.5)};
  std::uniform_real_distribution<double> uniform(0, 1);
  const auto answer = [&](int64_t u, const PairFeatures& x, int64_t m) {
    const double p = 1 / (1 + std::exp(-truth.logit(u, x.values.data() + m * D)));
    return uniform(rng) < p ? 1.0 : 0.0;
  };
  std::vector<Observation> train_obs, test_obs;
  for (int64_t u = 0; u < users; ++u) {
    for (int64_t m = 0; m < train_pairs; ++m) {
      const double r = uniform(rng);
      if (r < 0.5) continue;  // half the pairs unanswered
      if (r < 0.51)
        train_obs.push_back({u, m, 0.5});  // and a few ties
      else
        train_obs.push_back({u, m, answer(u, train, m)});
    }
    for (int64_t m = 0; m < test_pairs; ++m)
      test_obs.push_back({u, m, answer(u, test, m)});
  }

  const LowRankFactors init =
      impute_low_rank(preference_matrix(users, train_pairs, train_obs), users, train_pairs, J);
  Factorization start{users, D, J, init.left, fit_linear_head(train, init.right, J, 1e-3)};
  RefineConfig config;  // the paper's: Adam, lr 1e-3, batch 32, lambda_l2 0.02
  config.steps = 3000;
  config.learning_rate = 1e-2;
  config.seed = 4;
  const RefineResult refined = refine_factorization(start, train, train_obs, config);

  const auto as_planted = [&](const Factorization& f) {
    return PlantedModel{users, D, J, f.lambda, f.w};
  };
  const HeldOut best = evaluate(truth, test, test_obs);
  const HeldOut svd = evaluate(as_planted(start), test, test_obs);
  const HeldOut trained = evaluate(as_planted(refined.model), test, test_obs);
  const HeldOut zero = evaluate(
      as_planted({users, D, J, Matrix(users * J, 0.0), Matrix(D * J, 0.0)}), test, test_obs);
  std::cout << "held-out accuracy / NLL: planted " << best.accuracy << " / " << best.nll
            << ", SVD + head " << svd.accuracy << " / " << svd.nll << ", refined "
            << trained.accuracy << " / " << trained.nll << ", zero " << zero.accuracy << " / "
            << zero.nll << "\nimputation: " << init.iterations << " iterations, converged "
            << init.converged << "; train NLL " << refined.trajectory.front().nll << " -> "
            << refined.trajectory.back().nll << "\n";
  EXPECT_GT(trained.accuracy, best.accuracy - 0.03);
  EXPECT_LT(trained.nll, best.nll + 0.03);
  EXPECT_LT(zero.accuracy, best.accuracy - 0.1);  // the bar is one an untrained model fails
  EXPECT_LT(refined.trajectory.back().nll, refined.trajectory.front().nll);
  EXPECT_EQ(refined.trajectory.back().step, config.steps);
  EXPECT_EQ(refined.trajectory.size(), static_cast<size_t>(config.steps / config.log_every + 1));

  // The same seed replays the same run.
  const RefineResult again = refine_factorization(start, train, train_obs, config);
  EXPECT_EQ(again.model.lambda, refined.model.lambda);
  EXPECT_EQ(again.model.w, refined.model.w);
}

TEST(PrefTraining, ErrorsNameTheProblem) {
  const Matrix a(6, 1.0);  // 2 x 3
  EXPECT_ERROR(truncated_svd(a, 2, 3, 0), "rank 0 is outside [1, 2]");
  EXPECT_ERROR(truncated_svd(a, 2, 3, 3), "rank 3 is outside [1, 2]");
  EXPECT_ERROR(truncated_svd(a, 3, 3, 1), "a 3 x 3 matrix needs 9 entries, got 6");
  EXPECT_ERROR(truncated_svd({1, 2, std::nan(""), 4, 5, 6}, 2, 3, 1), "entry (0, 2) is not finite");
  SvdConfig svd;
  svd.oversampling = -1;
  EXPECT_ERROR(truncated_svd(a, 2, 3, 1, svd), "svd.oversampling must be >= 0");

  const double nan = std::nan("");
  EXPECT_ERROR(impute_low_rank(Matrix(6, nan), 2, 3, 1), "has no observed entry");
  EXPECT_ERROR(impute_low_rank({1, nan, INFINITY, 0, 0, 0}, 2, 3, 1), "entry (0, 2) is infinite");
  EXPECT_ERROR(impute_low_rank(a, 2, 3, 5), "rank 5 is outside [1, 2]");
  EXPECT_ERROR(impute_low_rank(a, 2, 2, 1), "a 2 x 2 matrix needs 4 entries, got 6");

  const PairFeatures x{3, 2, Matrix(6, 0.5)};
  EXPECT_ERROR(fit_linear_head(x, Matrix(6, 1.0), 2, 0.0), "l2 must be > 0");
  EXPECT_ERROR(fit_linear_head(x, Matrix(5, 1.0), 2, 0.1), "phi [J, pairs] needs 6 values");
  EXPECT_ERROR(fit_linear_head({3, 2, Matrix(5, 0.5)}, Matrix(6, 1.0), 2, 0.1),
               "3 x 2 needs 6 values, got 5");

  EXPECT_ERROR(preference_matrix(2, 3, {{2, 0, 1.0}}), "observation 0: user 2 is outside [0, 2)");
  EXPECT_ERROR(preference_matrix(2, 3, {{0, 0, 1.0}, {0, 3, 1.0}}),
               "observation 1: pair 3 is outside [0, 3)");
  EXPECT_ERROR(preference_matrix(2, 3, {{0, 0, 0.3}}), "answer 0.3 is not 0, 0.5 (a tie) or 1");

  const Factorization model{2, 2, 1, {0.1, 0.2}, {0.3, 0.4}};
  EXPECT_ERROR(factorization_loss({2, 2, 1, {0.1}, {0.3, 0.4}}, x, {}, 0.02, 0.0),
               "lambda needs 2 values [users, rank], got 1");
  EXPECT_ERROR(factorization_loss({2, 3, 1, {0.1, 0.2}, {0.3, 0.4, 0.5}}, x, {}, 0.02, 0.0),
               "the head takes features of dimension 3, the pairs have 2");
  EXPECT_ERROR(refine_factorization(model, x, {{0, 1, 0.5}}), "no observation with a preference");
  RefineConfig config;
  config.batch_size = 0;
  EXPECT_ERROR(refine_factorization(model, x, {{0, 1, 1.0}}, config),
               "refine.batch_size must be >= 1, got 0");
}

}  // namespace
}  // namespace tailor::elicit

#undef EXPECT_ERROR  // a unity build of the tests would carry it into the next file
