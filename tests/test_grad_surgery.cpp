// PCGrad and MGDA against hand-computed cases, a float64 two-task formula and a brute-force
// simplex search; flatten/assign round trip.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>
#include <vector>

#include <torch/torch.h>

#include "common/error.h"
#include "test_support.h"
#include "train/optim/grad_surgery.h"

namespace {

using Vec = std::vector<double>;

at::Tensor rows(const std::vector<Vec>& r, at::ScalarType dtype = at::kDouble) {
  std::vector<at::Tensor> t;
  for (const Vec& v : r)
    t.push_back(at::tensor(v, at::kDouble));
  return at::stack(t).to(dtype);
}

void expect_vec(const Vec& got, const Vec& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], tol) << what << " [" << i << "]";
}

TEST(GradSurgery, PCGradTwoTasksHandComputed) {
  // g1.g2 = -1: g1' = g1 - (-1/2) g2 = (0.5, 0.5); g2' = g2 - (-1/1) g1 = (0, 1).
  const at::Tensor g = rows({{1, 0}, {-1, 1}});
  std::mt19937_64 rng(0);
  expect_vec(tailor::test::to_vec(tailor::pcgrad(g, rng)), {0.5, 1.5}, 1e-12, "sum");
  expect_vec(tailor::test::to_vec(tailor::pcgrad(g, rng, "mean")), {0.25, 0.75}, 1e-12, "mean");
  // float32 in, float32 out.
  const at::Tensor out = tailor::pcgrad(g.to(at::kFloat), rng);
  EXPECT_EQ(out.scalar_type(), at::kFloat);
  expect_vec(tailor::test::to_vec(out), {0.5, 1.5}, 1e-6, "float32");
}

TEST(GradSurgery, PCGradNoConflictIsPlainSum) {
  const at::Tensor g = rows({{1, 2}, {3, -1}, {0.5, 0.5}});  // all pairwise dots > 0
  std::mt19937_64 rng(3);
  expect_vec(tailor::test::to_vec(tailor::pcgrad(g, rng)), {4.5, 1.5}, 1e-12, "sum");
  expect_vec(tailor::test::to_vec(tailor::pcgrad(g, rng, "mean")), {1.5, 0.5}, 1e-12, "mean");
}

TEST(GradSurgery, PCGradSkipsZeroGradient) {
  const at::Tensor g = rows({{1, 0}, {0, 0}, {-1, 1}});
  std::mt19937_64 rng(1);
  expect_vec(tailor::test::to_vec(tailor::pcgrad(g, rng)), {0.5, 1.5}, 1e-12, "zero task");
}

// Two random tasks against the closed form written out in float64; the PCGrad sum of two tasks
// never conflicts with either original (Cauchy–Schwarz).
TEST(GradSurgery, PCGradTwoTasksMatchesFormulaRandom) {
  std::mt19937_64 data(11);
  for (int trial = 0; trial < 20; ++trial) {
    Vec g1(7), g2(7);
    for (auto* v : {&g1, &g2}) {
      for (double& x : *v)
        x = static_cast<double>(data() % 2001) / 1000.0 - 1.0;
    }
    const double d = tailor::test::dot(g1, g2);
    Vec want(7);
    for (size_t k = 0; k < 7; ++k) {
      const double p1 = d < 0 ? g1[k] - d / tailor::test::dot(g2, g2) * g2[k] : g1[k];
      const double p2 = d < 0 ? g2[k] - d / tailor::test::dot(g1, g1) * g1[k] : g2[k];
      want[k] = p1 + p2;
    }
    std::mt19937_64 rng(trial);
    const Vec got = tailor::test::to_vec(tailor::pcgrad(rows({g1, g2}), rng));
    expect_vec(got, want, 1e-12, "trial " + std::to_string(trial));
    EXPECT_GE(tailor::test::dot(got, g1), -1e-12);
    EXPECT_GE(tailor::test::dot(got, g2), -1e-12);
  }
}

// g1 = (1, 0), g2 = (1, 1), g3 = (-1, -0.5): g1.g2 = 1, g1.g3 = -1, g2.g3 = -1.5, |g3|^2 = 1.25.
// Each task's projection depends on the order it visits the other two (worked by hand):
//   g1: (2, 3) -> no conflict with g2, then g1 - (-1/1.25) g3 = (0.2, -0.4)
//       (3, 2) -> (0.2, -0.4), then .g2 = -0.2 < 0: - (-0.2/2) g2 = (0.3, -0.3)
//   g2: (1, 3) -> no conflict with g1, then g2 - (-1.5/1.25) g3 = (-0.2, 0.4)
//       (3, 1) -> (-0.2, 0.4), then .g1 = -0.2 < 0: - (-0.2/1) g1 = (0, 0.4)
//   g3: (1, 2) -> g3 + g1 = (0, -0.5), then .g2 = -0.5: - (-0.5/2) g2 = (0.25, -0.25)
//       (2, 1) -> g3 + 0.75 g2 = (-0.25, 0.25), then .g1 = -0.25: + 0.25 g1 = (0, 0.25)
// The 8 possible sums have distinct x coordinates, so the result identifies the orders used.
TEST(GradSurgery, PCGradThreeTasksOrderDependent) {
  const Vec g1{1, 0}, g2{1, 1}, g3{-1, -0.5};
  const at::Tensor g = rows({g1, g2, g3});
  struct Option {
    Vec projected;
    Vec last_original;  // the original visited last in that order
  };
  const std::vector<std::vector<Option>> options = {
      {{{0.2, -0.4}, g3}, {{0.3, -0.3}, g2}},
      {{{-0.2, 0.4}, g3}, {{0.0, 0.4}, g1}},
      {{{0.25, -0.25}, g2}, {{0.0, 0.25}, g1}},
  };
  // The final projection leaves each g_i' orthogonal-or-positive to the original it saw last.
  for (const auto& per_task : options) {
    for (const Option& o : per_task)
      EXPECT_GE(tailor::test::dot(o.projected, o.last_original), -1e-12);
  }
  std::set<int> seen;
  for (uint64_t seed = 0; seed < 64; ++seed) {
    std::mt19937_64 rng(seed);
    const Vec got = tailor::test::to_vec(tailor::pcgrad(g, rng));
    int matches = 0;
    for (int combo = 0; combo < 8; ++combo) {
      Vec sum{0, 0};
      for (int i = 0; i < 3; ++i) {
        const Vec& p = options[i][(combo >> i) & 1].projected;
        sum[0] += p[0];
        sum[1] += p[1];
      }
      if (std::abs(sum[0] - got[0]) < 1e-12 && std::abs(sum[1] - got[1]) < 1e-12) {
        ++matches;
        seen.insert(combo);
      }
    }
    EXPECT_EQ(matches, 1) << "seed " << seed << " gave (" << got[0] << ", " << got[1] << ")";
  }
  EXPECT_EQ(seen.size(), 8u) << "the random visiting order should reach every combination";

  // A fixed rng gives a fixed result, and the generator advances (one shuffle per task).
  std::mt19937_64 a(7), b(7);
  const Vec first = tailor::test::to_vec(tailor::pcgrad(g, a));
  expect_vec(tailor::test::to_vec(tailor::pcgrad(g, b)), first, 0.0, "same seed");
  EXPECT_EQ(a(), b());
  std::mt19937_64 fresh(7);
  std::mt19937_64 used(7);
  tailor::pcgrad(g, used);
  EXPECT_NE(fresh(), used());
}

TEST(GradSurgery, PCGradRejectsBadInput) {
  std::mt19937_64 rng(0);
  EXPECT_THROW(tailor::pcgrad(at::zeros({3}), rng), tailor::Error);
  EXPECT_THROW(tailor::pcgrad(at::zeros({2, 3}, at::kInt), rng), tailor::Error);
  EXPECT_THROW(tailor::pcgrad(at::zeros({2, 3}), rng, "max"), tailor::Error);
}

TEST(GradSurgery, MGDATwoTasksClosedForm) {
  auto w = [](const std::vector<Vec>& g) { return tailor::mgda_weights(rows(g)); };
  expect_vec(w({{1, 0}, {0, 1}}), {0.5, 0.5}, 1e-12, "orthogonal unit");
  // min_c |c (2,0) + (1-c) (0,1)|^2 = 4c^2 + (1-c)^2 -> c = 1/5.
  expect_vec(w({{2, 0}, {0, 1}}), {0.2, 0.8}, 1e-12, "interior");
  // (|g2|^2 - g1.g2) / |g1 - g2|^2 = (5 - 2) / 2 = 1.5 -> clipped to 1: g1 is the min-norm point.
  expect_vec(w({{1, 0}, {2, 1}}), {1.0, 0.0}, 1e-12, "clipped at 1");
  // (1 - 2) / 2 = -0.5 -> clipped to 0.
  expect_vec(w({{2, 1}, {1, 0}}), {0.0, 1.0}, 1e-12, "clipped at 0");
  expect_vec(w({{1, 1}, {1, 1}}), {0.5, 0.5}, 1e-12, "identical");
  expect_vec(w({{3, -1}}), {1.0}, 0.0, "one task");
  // Combined and scaled by T = 2: 2 * (0.2 (2,0) + 0.8 (0,1)) = (0.8, 1.6).
  expect_vec(tailor::test::to_vec(tailor::mgda_combine(rows({{2, 0}, {0, 1}}), {0.2, 0.8})),
             {0.8, 1.6}, 1e-12, "combine");
  EXPECT_THROW(tailor::mgda_combine(rows({{2, 0}, {0, 1}}), {1.0}), tailor::Error);
}

double objective(const std::vector<Vec>& m, const Vec& a) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    for (size_t j = 0; j < a.size(); ++j)
      s += a[i] * a[j] * m[i][j];
  }
  return s;
}

// min over the 3-simplex of alpha^T M alpha by exhaustive search: a lattice with step 1/400, then
// a lattice with step 1/40000 within 2 coarse steps of the best coarse point.
double brute_force_min(const std::vector<Vec>& m) {
  auto search = [&](double a0, double b0, double radius, int half, double& best_a, double& best_b) {
    double best = INFINITY;
    const double h = radius / half;
    for (int i = -half; i <= half; ++i) {
      const double a = a0 + i * h;
      if (a < -1e-15 || a > 1 + 1e-15) continue;
      for (int j = -half; j <= half; ++j) {
        const double b = b0 + j * h;
        if (b < -1e-15 || a + b > 1 + 1e-15) continue;
        const double f = objective(m, {a, b, std::max(0.0, 1 - a - b)});
        if (f < best) {
          best = f;
          best_a = a;
          best_b = b;
        }
      }
    }
    return best;
  };
  double a = 0, b = 0;
  search(0.5, 0.5, 0.5, 200, a, b);
  double fa = a, fb = b;
  return search(a, b, 2.0 / 400, 200, fa, fb);
}

TEST(GradSurgery, MGDAFrankWolfeMatchesBruteForce) {
  std::mt19937_64 data(5);
  auto uniform = [&] { return static_cast<double>(data() >> 11) / 9007199254740992.0; };
  std::vector<std::vector<Vec>> cases = {
      {{1, 0, 0}, {0, 2, 0}, {0, 0, 3}},    // interior optimum
      {{1, 0.2}, {0.3, 1}, {2, 2}},         // third task irrelevant (optimum on an edge)
      {{1, 0}, {-0.5, 0.8}, {-0.5, -0.8}},  // origin nearly in the hull
  };
  for (int trial = 0; trial < 12; ++trial) {
    std::vector<Vec> g(3, Vec(4));
    for (auto& v : g) {
      for (double& x : v)
        x = 2 * uniform() - 1 + (trial % 2 ? 0.7 : 0.0);  // some all-aligned
    }
    cases.push_back(g);
  }
  for (size_t c = 0; c < cases.size(); ++c) {
    const std::vector<Vec>& g = cases[c];
    std::vector<Vec> m(3, Vec(3));
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j)
        m[i][j] = tailor::test::dot(g[i], g[j]);
    }
    const Vec alpha = tailor::mgda_weights(rows(g));
    ASSERT_EQ(alpha.size(), 3u);
    double total = 0;
    for (double x : alpha) {
      EXPECT_GE(x, 0.0);
      total += x;
    }
    EXPECT_NEAR(total, 1.0, 1e-12);
    EXPECT_NEAR(objective(m, alpha), brute_force_min(m), 1e-6) << "case " << c;
  }
}

// min alpha^T M alpha on the simplex, exactly, by enumerating supports: on a support S the
// minimiser solves [M_SS 1; 1^T 0] [alpha_S; -lambda] = [0; 1] (Gaussian elimination with partial
// pivoting); the best nonnegative solution over all S is the minimum (M positive definite).
double exact_min(const std::vector<Vec>& m) {
  const int n = static_cast<int>(m.size());
  double best = INFINITY;
  for (int mask = 1; mask < (1 << n); ++mask) {
    std::vector<int> s;
    for (int i = 0; i < n; ++i) {
      if (mask >> i & 1) s.push_back(i);
    }
    const int k = static_cast<int>(s.size());
    std::vector<Vec> a(k + 1, Vec(k + 2, 0.0));  // augmented [k+1, k+2]
    for (int r = 0; r < k; ++r) {
      for (int c = 0; c < k; ++c)
        a[r][c] = m[s[r]][s[c]];
      a[r][k] = 1.0;
      a[k][r] = 1.0;
    }
    a[k][k + 1] = 1.0;
    bool singular = false;
    for (int col = 0; col <= k && !singular; ++col) {
      int piv = col;
      for (int r = col + 1; r <= k; ++r) {
        if (std::abs(a[r][col]) > std::abs(a[piv][col])) piv = r;
      }
      if (std::abs(a[piv][col]) < 1e-12) singular = true;
      std::swap(a[col], a[piv]);
      for (int r = 0; r <= k && !singular; ++r) {
        if (r == col) continue;
        const double f = a[r][col] / a[col][col];
        for (int c = col; c <= k + 1; ++c)
          a[r][c] -= f * a[col][c];
      }
    }
    if (singular) continue;
    Vec alpha(n, 0.0);
    bool feasible = true;
    for (int r = 0; r < k; ++r) {
      alpha[s[r]] = a[r][k + 1] / a[r][r];
      if (alpha[s[r]] < 0) feasible = false;
    }
    if (feasible) best = std::min(best, objective(m, alpha));
  }
  return best;
}

TEST(GradSurgery, MGDAFrankWolfeMatchesExactMinimumManyTasks) {
  std::mt19937_64 data(9);
  auto uniform = [&] { return static_cast<double>(data() >> 11) / 9007199254740992.0; };
  for (int trial = 0; trial < 12; ++trial) {
    const int tasks = 4 + trial % 3;  // 4..6 tasks in 6 dimensions: M is positive definite
    std::vector<Vec> g(tasks, Vec(6));
    for (auto& v : g) {
      for (double& x : v)
        x = 2 * uniform() - 1 + (trial % 2 ? 0.5 : 0.0);
    }
    std::vector<Vec> m(tasks, Vec(tasks));
    for (int i = 0; i < tasks; ++i) {
      for (int j = 0; j < tasks; ++j)
        m[i][j] = tailor::test::dot(g[i], g[j]);
    }
    const Vec alpha = tailor::mgda_weights(rows(g));
    EXPECT_NEAR(objective(m, alpha), exact_min(m), 1e-8) << "trial " << trial;
  }
}

TEST(GradSurgery, MGDAKnownMinNormVertex) {
  // g1.g2 = 1 >= |g1|^2 and g1.g3 = 2 >= |g1|^2: g1 itself is the min-norm point of the hull.
  expect_vec(tailor::mgda_weights(rows({{1, 0, 0}, {1, 1, 0}, {2, 0, 1}})), {1, 0, 0}, 1e-12,
             "vertex");
  // Three unit vectors 120 degrees apart: the origin is the uniform combination.
  const double s = std::sqrt(3.0) / 2;
  expect_vec(tailor::mgda_weights(rows({{1, 0}, {-0.5, s}, {-0.5, -s}})), {1. / 3, 1. / 3, 1. / 3},
             1e-9, "origin");
}

TEST(GradSurgery, FlattenAssignRoundTrip) {
  at::Tensor a = at::arange(6, at::kFloat).reshape({2, 3}).requires_grad_();
  at::Tensor b = at::zeros({4}, at::kDouble).requires_grad_();
  at::Tensor c = at::zeros({1}, at::kFloat).requires_grad_();
  a.mutable_grad() = at::tensor({1., 2., 3., 4., 5., 6.}, at::kFloat).reshape({2, 3});
  c.mutable_grad() = at::tensor({-7.}, at::kFloat);
  const std::vector<at::Tensor> params{a, b, c};

  const at::Tensor flat = tailor::flatten_grads(params);
  EXPECT_EQ(flat.scalar_type(), at::kFloat);
  expect_vec(tailor::test::to_vec(flat), {1, 2, 3, 4, 5, 6, 0, 0, 0, 0, -7}, 0.0, "flatten");

  at::Tensor update = at::arange(11, at::kFloat).mul_(0.5);
  tailor::assign_flat_grad(params, update);
  ASSERT_TRUE(b.grad().defined());
  EXPECT_EQ(b.grad().scalar_type(), at::kDouble);
  EXPECT_EQ(b.grad().sizes(), b.sizes());
  expect_vec(tailor::test::to_vec(a.grad()), {0, 0.5, 1, 1.5, 2, 2.5}, 0.0, "a");
  expect_vec(tailor::test::to_vec(b.grad()), {3, 3.5, 4, 4.5}, 0.0, "b");
  expect_vec(tailor::test::to_vec(c.grad()), {5}, 0.0, "c");
  expect_vec(tailor::test::to_vec(tailor::flatten_grads(params)), tailor::test::to_vec(update), 0.0,
             "round trip");
  update.zero_();  // the grads own their memory
  expect_vec(tailor::test::to_vec(c.grad()), {5}, 0.0, "no alias");

  EXPECT_THROW(tailor::assign_flat_grad(params, at::zeros({10})), tailor::Error);
}

}  // namespace
