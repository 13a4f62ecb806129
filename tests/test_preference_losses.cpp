// Bradley–Terry, KL and contrastive losses against float64 formulas written out here, their
// gradients against central finite differences, stability at large margins, KL schedules.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include <torch/torch.h>

#include "common/error.h"
#include "test_support.h"
#include "train/losses/preference_losses.h"

namespace {

using Vec = std::vector<double>;

at::Tensor values(int64_t n, double scale, double phase) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[i] = scale * std::sin(1.3 * i + phase);
  return at::tensor(v, at::kDouble);
}

// Checks d f / d x by autograd against central differences (step 1e-6, float64), for a scalar
// function of one input tensor.
void expect_grad_matches_fd(const std::function<at::Tensor(const at::Tensor&)>& f, at::Tensor x,
                            const std::string& what) {
  at::Tensor leaf = x.detach().clone().requires_grad_();
  f(leaf).backward();
  const Vec analytic = tailor::test::to_vec(leaf.grad());
  const double h = 1e-6;
  at::Tensor flat = x.detach().clone().reshape({-1});
  for (int64_t i = 0; i < flat.numel(); ++i) {
    at::Tensor plus = flat.clone(), minus = flat.clone();
    plus[i] += h;
    minus[i] -= h;
    const double fp = f(plus.reshape(x.sizes())).item<double>();
    const double fm = f(minus.reshape(x.sizes())).item<double>();
    EXPECT_NEAR(analytic[static_cast<size_t>(i)], (fp - fm) / (2 * h), 1e-6)
        << what << " [" << i << "]";
  }
}

TEST(PreferenceLosses, BradleyTerryMatchesFormula) {
  const at::Tensor rc = values(6, 2.0, 0.3), rr = values(6, 1.5, 1.1);
  const Vec c = tailor::test::to_vec(rc), r = tailor::test::to_vec(rr);
  double want = 0;
  for (size_t k = 0; k < c.size(); ++k) {
    want += -std::log(1.0 / (1.0 + std::exp(-(c[k] - r[k]))));
  }
  want /= static_cast<double>(c.size());
  EXPECT_NEAR(tailor::bradley_terry_loss(rc, rr).item<double>(), want, 1e-12);
  // One pair with equal rewards: log 2.
  EXPECT_NEAR(tailor::bradley_terry_loss(at::zeros({1}), at::zeros({1})).item<double>(),
              std::log(2.0), 1e-7);
}

TEST(PreferenceLosses, BradleyTerryGradientMatchesFiniteDifferences) {
  const at::Tensor rr = values(5, 1.0, 2.0);
  expect_grad_matches_fd([&](const at::Tensor& rc) { return tailor::bradley_terry_loss(rc, rr); },
                         values(5, 2.0, 0.5), "d/d chosen");
  const at::Tensor rc = values(5, 2.0, 0.5);
  expect_grad_matches_fd([&](const at::Tensor& r) { return tailor::bradley_terry_loss(rc, r); }, rr,
                         "d/d rejected");
}

TEST(PreferenceLosses, BradleyTerryStableAtLargeMargins) {
  for (const auto dtype : {at::kFloat, at::kDouble}) {
    at::Tensor rc = at::tensor({1000.0, -1000.0}, dtype).requires_grad_();
    const at::Tensor rr = at::zeros({2}, dtype);
    const at::Tensor loss = tailor::bradley_terry_loss(rc, rr);
    // softplus(-1000) = 0 (to rounding), softplus(1000) = 1000: mean 500.
    EXPECT_NEAR(loss.item<double>(), 500.0, 1e-9);
    loss.backward();
    const Vec g = tailor::test::to_vec(rc.grad());
    // d/d rc of mean softplus(rr - rc) = -sigmoid(rr - rc) / 2: 0 and -0.5.
    EXPECT_NEAR(g[0], 0.0, 1e-12);
    EXPECT_NEAR(g[1], -0.5, 1e-7);
    for (double x : g)
      EXPECT_TRUE(std::isfinite(x));
  }
}

TEST(PreferenceLosses, BradleyTerryRejectsMismatchedShapes) {
  EXPECT_THROW(tailor::bradley_terry_loss(at::zeros({3}), at::zeros({2})), tailor::Error);
  EXPECT_THROW(tailor::bradley_terry_loss(at::zeros({0}), at::zeros({0})), tailor::Error);
}

// KL(N(m, s^2) || N(0, 1)) = -log s + (s^2 + m^2) / 2 - 1/2 per dimension (the textbook form,
// written in terms of s rather than log s^2).
TEST(PreferenceLosses, KLMatchesUnivariateNormalFormula) {
  const at::Tensor mean = values(12, 1.5, 0.2).reshape({3, 4});
  const at::Tensor logvar = values(12, 0.9, 0.7).reshape({3, 4});
  const Vec m = tailor::test::to_vec(mean), lv = tailor::test::to_vec(logvar);
  const at::Tensor kl = tailor::kl_to_standard_normal(mean, logvar);
  ASSERT_EQ(kl.sizes(), (std::vector<int64_t>{3}));
  const Vec got = tailor::test::to_vec(kl);
  for (int b = 0; b < 3; ++b) {
    double want = 0;
    for (int d = 0; d < 4; ++d) {
      const double s = std::sqrt(std::exp(lv[b * 4 + d]));
      want += -std::log(s) + (s * s + m[b * 4 + d] * m[b * 4 + d]) / 2 - 0.5;
    }
    EXPECT_NEAR(got[b], want, 1e-12) << "row " << b;
  }
  // Zero at the prior itself.
  EXPECT_EQ(tailor::kl_to_standard_normal(at::zeros({2, 3}), at::zeros({2, 3}))
                .abs()
                .max()
                .item<double>(),
            0.0);
  EXPECT_THROW(tailor::kl_to_standard_normal(at::zeros({2, 3}), at::zeros({2, 4})), tailor::Error);
}

TEST(PreferenceLosses, KLGradientMatchesFiniteDifferences) {
  const at::Tensor mean = values(8, 1.2, 0.4).reshape({2, 4});
  const at::Tensor logvar = values(8, 0.8, 1.9).reshape({2, 4});
  const at::Tensor weights = at::tensor({0.7, -1.3}, at::kDouble);  // mixes the rows
  expect_grad_matches_fd(
      [&](const at::Tensor& m) {
        return (tailor::kl_to_standard_normal(m, logvar) * weights).sum();
      },
      mean, "d/d mean");
  expect_grad_matches_fd(
      [&](const at::Tensor& lv) {
        return (tailor::kl_to_standard_normal(mean, lv) * weights).sum();
      },
      logvar, "d/d logvar");
}

double contrastive_ref(const Vec& mu, const std::vector<int64_t>& users, int dim) {
  const int b = static_cast<int>(users.size());
  if (b < 2) return 0.0;
  double total = 0;
  for (int i = 0; i < b; ++i) {
    for (int j = 0; j < b; ++j) {
      if (i == j) continue;
      double dot = 0, ni = 0, nj = 0;
      for (int d = 0; d < dim; ++d) {
        dot += mu[i * dim + d] * mu[j * dim + d];
        ni += mu[i * dim + d] * mu[i * dim + d];
        nj += mu[j * dim + d] * mu[j * dim + d];
      }
      const double cos = dot / (std::sqrt(ni) * std::sqrt(nj));
      total += users[i] == users[j] ? -cos : cos;
    }
  }
  return total / (b * (b - 1));
}

TEST(PreferenceLosses, ContrastiveMatchesPairwiseFormula) {
  const std::vector<int64_t> h{0, 1, 0, 2, 1};
  const at::Tensor users = at::tensor(h, at::kLong);
  const at::Tensor means = values(15, 1.0, 0.1).reshape({5, 3});
  EXPECT_NEAR(tailor::contrastive_latent_loss(means, users).item<double>(),
              contrastive_ref(tailor::test::to_vec(means), h, 3), 1e-12);
  // Hand case: two users, two identical directions each, opposite across users:
  // same-user pairs (4 ordered) give -1 each, cross pairs (8) give cos = -1 -> -1 each: -12 / 12.
  const at::Tensor opposite =
      at::tensor({1.0, 0.0, 2.0, 0.0, -1.0, 0.0, -3.0, 0.0}).reshape({4, 2});
  EXPECT_NEAR(
      tailor::contrastive_latent_loss(opposite, at::tensor({5, 5, 7, 7}, at::kLong)).item<double>(),
      -1.0, 1e-7);
  // Fewer than two samples: 0, and backward still works.
  at::Tensor one = at::ones({1, 3}, at::kDouble).requires_grad_();
  const at::Tensor zero = tailor::contrastive_latent_loss(one, at::tensor({0}, at::kLong));
  EXPECT_EQ(zero.item<double>(), 0.0);
  zero.backward();
  EXPECT_EQ(one.grad().abs().sum().item<double>(), 0.0);
  EXPECT_THROW(tailor::contrastive_latent_loss(means, at::tensor({0, 1}, at::kLong)),
               tailor::Error);
}

TEST(PreferenceLosses, ContrastiveGradientMatchesFiniteDifferences) {
  const at::Tensor users = at::tensor({3, 1, 3, 1, 2}, at::kLong);
  expect_grad_matches_fd(
      [&](const at::Tensor& m) { return tailor::contrastive_latent_loss(m, users); },
      values(20, 1.0, 0.9).reshape({5, 4}), "d/d means");
}

TEST(PreferenceLosses, KLWeightSchedules) {
  EXPECT_DOUBLE_EQ(tailor::kl_weight(tailor::KlSchedule::kConstant, 1e-4, 0, 0), 1e-4);
  EXPECT_DOUBLE_EQ(tailor::kl_weight(tailor::KlSchedule::kConstant, 1e-4, 500, 100), 1e-4);
  EXPECT_DOUBLE_EQ(tailor::kl_weight(tailor::KlSchedule::kLinear, 2.0, 0, 100), 0.0);
  EXPECT_DOUBLE_EQ(tailor::kl_weight(tailor::KlSchedule::kLinear, 2.0, 25, 100), 0.5);
  EXPECT_DOUBLE_EQ(tailor::kl_weight(tailor::KlSchedule::kLinear, 2.0, 100, 100), 2.0);
  EXPECT_DOUBLE_EQ(tailor::kl_weight(tailor::KlSchedule::kLinear, 2.0, 250, 100), 2.0);
  EXPECT_DOUBLE_EQ(tailor::kl_weight(tailor::KlSchedule::kCosine, 2.0, 0, 100), 0.0);
  EXPECT_NEAR(tailor::kl_weight(tailor::KlSchedule::kCosine, 2.0, 50, 100), 1.0, 1e-15);
  // 1 - cos(pi / 4) = 1 - sqrt(2)/2.
  EXPECT_NEAR(tailor::kl_weight(tailor::KlSchedule::kCosine, 2.0, 25, 100), 1.0 - std::sqrt(0.5),
              1e-15);
  EXPECT_DOUBLE_EQ(tailor::kl_weight(tailor::KlSchedule::kCosine, 2.0, 100, 100), 2.0);
  EXPECT_DOUBLE_EQ(tailor::kl_weight(tailor::KlSchedule::kCosine, 2.0, 1000, 100), 2.0);
  EXPECT_THROW(tailor::kl_weight(tailor::KlSchedule::kLinear, 1.0, 0, 0), tailor::Error);
  EXPECT_THROW(tailor::kl_weight(tailor::KlSchedule::kCosine, 1.0, -1, 10), tailor::Error);
}

}  // namespace
