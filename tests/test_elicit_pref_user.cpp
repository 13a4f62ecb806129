// PReF's new-user fit and its choice of questions (judges/elicit/pref_user.h), against float64
// computations written here for J = 2: Newton's method with the 2x2 inverse in closed form, the
// gradient at the solution, and the H^-1 norm of every candidate pair by brute force. Also PReF's
// simulated training users (judges/elicit/simulated_users.h) against the moments of the
// distribution they are drawn from.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "common/error.h"
#include "judges/elicit/pref_user.h"
#include "judges/elicit/simulated_users.h"

namespace tailor::elicit {
namespace {

// Not separable (answers 1 and 4 point the same way with opposite choices), one tie.
const std::vector<Answer> kUserAnswers = {{{1.0, 0.5}, 1},   {{-0.3, 1.0}, 1}, {{0.8, -0.6}, -1},
                                          {{0.9, 0.45}, -1}, {{0.2, 0.2}, 0},  {{1.5, 1.0}, 1}};
constexpr double kL2 = 0.1;

double sig(double x) {
  return 1 / (1 + std::exp(-x));
}

// The gradient and Hessian of sum log(1 + e^(-c l.v)) + (kL2 / 2)|l|^2 at l, written out for J = 2.
void derivatives(const double l[2], double g[2], double h[2][2]) {
  g[0] = kL2 * l[0], g[1] = kL2 * l[1];
  h[0][0] = h[1][1] = kL2, h[0][1] = h[1][0] = 0;
  for (const auto& a : kUserAnswers) {
    if (a.choice == 0) continue;
    const double v[2] = {a.difference[0], a.difference[1]};
    const double m = l[0] * v[0] + l[1] * v[1];
    for (int i = 0; i < 2; ++i) {
      g[i] -= a.choice * sig(-a.choice * m) * v[i];
      for (int j = 0; j < 2; ++j)
        h[i][j] += sig(m) * sig(-m) * v[i] * v[j];
    }
  }
}

TEST(PrefUser, FitEqualsAFloat64NewtonSolution) {
  double l[2] = {0, 0};
  for (int it = 0; it < 60; ++it) {
    double g[2], h[2][2];
    derivatives(l, g, h);
    const double det = h[0][0] * h[1][1] - h[0][1] * h[1][0];
    l[0] -= (h[1][1] * g[0] - h[0][1] * g[1]) / det;
    l[1] -= (-h[1][0] * g[0] + h[0][0] * g[1]) / det;
  }
  double g[2], h[2][2];
  derivatives(l, g, h);
  ASSERT_LT(std::hypot(g[0], g[1]), 1e-12) << "the test's own Newton must have converged";

  const UserFit fit = fit_user(2, kUserAnswers, kL2);
  std::cout << "lambda " << fit.lambda[0] << ", " << fit.lambda[1] << " after " << fit.iterations
            << " Newton steps\n";
  EXPECT_NEAR(fit.lambda[0], l[0], 1e-10);
  EXPECT_NEAR(fit.lambda[1], l[1], 1e-10);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      EXPECT_NEAR(fit.hessian[i * 2 + j], h[i][j], 1e-10) << i << "," << j;
  EXPECT_GT(std::hypot(l[0], l[1]), 0.1);  // the answers moved lambda away from 0

  // No answers: the L2 term alone, minimised at 0.
  const UserFit none = fit_user(2, {}, kL2);
  EXPECT_EQ(none.lambda, (std::vector<double>{0.0, 0.0}));
}

TEST(PrefUser, TheUncertainPairIsTheBruteForceLargestInverseHessianNorm) {
  const UserFit fit = fit_user(2, kUserAnswers, kL2);
  const std::vector<double> features = {0.0, 0.0, 1.0, 0.4, -0.5, 1.2, 0.3, -0.9, 2.0, 1.1};
  const double* H = fit.hessian.data();
  const double det = H[0] * H[3] - H[1] * H[2];
  const double inv[2][2] = {{H[3] / det, -H[1] / det}, {-H[2] / det, H[0] / det}};
  int best[2] = {-1, -1};
  double top = -1, second = -1;
  for (int j = 0; j < 5; ++j)
    for (int k = j + 1; k < 5; ++k) {
      const double v[2] = {features[2 * j] - features[2 * k],
                           features[2 * j + 1] - features[2 * k + 1]};
      double q = 0;
      for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b)
          q += v[a] * inv[a][b] * v[b];
      const double norm = std::sqrt(q);
      if (norm > top) {
        second = top, top = norm, best[0] = j, best[1] = k;
      } else {
        second = std::max(second, norm);
      }
    }
  ASSERT_GT(top - second, 1e-6) << "the hand-built case must have one best pair";
  const Question q = choose_uncertain_pair(2, fit.hessian, features);
  EXPECT_EQ(q.first, best[0]);
  EXPECT_EQ(q.second, best[1]);
  EXPECT_NEAR(q.score, top, 1e-12);
}

TEST(PrefUser, ErrorsNameTheProblem) {
  EXPECT_THROW(fit_user(2, kUserAnswers, 0.0), Error);
  const std::string error = [] {
    try {
      fit_user(3, kUserAnswers, kL2);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  }();
  EXPECT_NE(error.find("answer 1 has 2 features, expected 3"), std::string::npos) << error;
  EXPECT_THROW(choose_uncertain_pair(2, {1, 0, 0, 1}, {0.1, 0.2}), Error);  // one candidate
}

// Dirichlet(1) over K = 4 oracles: each |weight| has mean 1/K and the absolute weights sum to 1;
// each sign is flipped with probability p. 4000 users: the mean's standard error is
// sqrt((K - 1) / (K^2 (K + 1)) / n) ~ 0.003 for the weights and sqrt(p (1 - p) / (K n)) ~ 0.004
// for the flips; 5 standard errors again. The same seed gives the same users.
TEST(PrefTrainingUsers, DirichletWeightsWithFlippedSigns) {
  const std::vector<std::string> oracles = {"a", "b", "c", "d"};
  const SimulatedUsersConfig config{4000, 1.0, 0.3, 99};
  const auto users = simulated_users(oracles, config);
  ASSERT_EQ(users.size(), 4000u);
  std::vector<double> mean_abs(4, 0);
  double flipped = 0;
  for (const auto& u : users) {
    double total = 0;
    for (size_t k = 0; k < 4; ++k) {
      const double w = u.at(oracles[k]);
      mean_abs[k] += std::abs(w) / 4000;
      flipped += w < 0 ? 1.0 / 16000 : 0;
      total += std::abs(w);
    }
    EXPECT_NEAR(total, 1.0, 1e-12);
  }
  for (double m : mean_abs)
    EXPECT_NEAR(m, 0.25, 5 * 0.0031);
  EXPECT_NEAR(flipped, 0.3, 5 * 0.0037);
  EXPECT_EQ(simulated_users(oracles, config), users);
  EXPECT_NE(simulated_users(oracles, {4000, 1.0, 0.3, 100}), users);
  EXPECT_THROW(simulated_users(oracles, {0, 1.0, 0.3, 1}), Error);
  EXPECT_THROW(simulated_users(oracles, {2, 0.0, 0.3, 1}), Error);
  EXPECT_THROW(simulated_users(oracles, {2, 1.0, 1.5, 1}), Error);
}

}  // namespace
}  // namespace tailor::elicit
