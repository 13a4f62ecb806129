#include "judges/elicit/pref_user.h"

#include <cmath>
#include <string>

#include "common/error.h"
#include "judges/elicit/cholesky.h"
#include "judges/elicit/logistic.h"

namespace tailor::elicit {

namespace {

// x = A^-1 b from A's Cholesky factor.
// Out of line: inlined, GCC 12 warns falsely (-Wfree-nonheap-object) about the returned vector.
[[gnu::noinline]] std::vector<double> solve(const std::vector<double>& l, int64_t n,
                                            std::vector<double> b) {
  cholesky_solve_in_place(l, n, b.data());
  return b;
}

void check_answers(int64_t J, const std::vector<Answer>& answers) {
  if (J < 1) throw Error("elicit", "PReF needs J >= 1 features");
  for (size_t i = 0; i < answers.size(); ++i)
    if (static_cast<int64_t>(answers[i].difference.size()) != J)
      throw Error("elicit", "answer " + std::to_string(i + 1) + " has " +
                                std::to_string(answers[i].difference.size()) +
                                " features, expected " + std::to_string(J));
}

}  // namespace

std::vector<double> fit_hessian(int64_t J, const std::vector<Answer>& answers,
                                const std::vector<double>& lambda, double l2) {
  check_answers(J, answers);
  std::vector<double> h(static_cast<size_t>(J * J), 0.0);
  for (int64_t i = 0; i < J; ++i)
    h[i * J + i] = l2;
  for (const auto& a : answers) {
    if (a.choice == 0) continue;
    const double s = sigmoid(dot(lambda.data(), a.difference.data(), J));
    const double w = s * (1 - s);
    for (int64_t i = 0; i < J; ++i)
      for (int64_t j = 0; j < J; ++j)
        h[i * J + j] += w * a.difference[i] * a.difference[j];
  }
  return h;
}

UserFit fit_user(int64_t J, const std::vector<Answer>& answers, double l2) {
  if (!(l2 > 0)) throw Error("elicit", "the L2 weight of a new user's fit must be > 0");
  check_answers(J, answers);
  UserFit fit;
  fit.lambda.assign(static_cast<size_t>(J), 0.0);
  for (fit.iterations = 1; fit.iterations <= 100; ++fit.iterations) {
    // Gradient of the loss: l2 lambda - sum_i c_i sigmoid(-c_i lambda . v_i) v_i.
    std::vector<double> gradient(fit.lambda);
    for (auto& g : gradient)
      g *= l2;
    for (const auto& a : answers) {
      if (a.choice == 0) continue;
      const double r = sigmoid(-a.choice * dot(fit.lambda.data(), a.difference.data(), J));
      for (int64_t i = 0; i < J; ++i)
        gradient[i] -= a.choice * r * a.difference[i];
    }
    const std::vector<double> step = solve(
        cholesky(fit_hessian(J, answers, fit.lambda, l2), J, "the fit's Hessian"), J, gradient);
    for (int64_t i = 0; i < J; ++i)
      fit.lambda[i] -= step[i];
    if (std::sqrt(dot(step.data(), step.data(), J)) < 1e-12) break;
  }
  if (fit.iterations > 100) throw Error("elicit", "a new user's fit did not converge in 100 steps");
  fit.hessian = fit_hessian(J, answers, fit.lambda, l2);
  return fit;
}

Question choose_uncertain_pair(int64_t J, const std::vector<double>& hessian,
                               const std::vector<double>& features) {
  if (J < 1 || hessian.size() != static_cast<size_t>(J * J) ||
      features.size() % static_cast<size_t>(J) != 0)
    throw Error("elicit", "choose_uncertain_pair: a [J, J] Hessian and [N, J] features needed");
  const int64_t N = static_cast<int64_t>(features.size()) / J;
  if (N < 2)
    throw Error("elicit",
                "choosing a question needs at least 2 candidates, got " + std::to_string(N));
  const std::vector<double> l = cholesky(hessian, J, "the fit's Hessian");
  Question best{-1, -1, 0.0};
  std::vector<double> v(static_cast<size_t>(J));
  for (int64_t j = 0; j < N; ++j)
    for (int64_t k = j + 1; k < N; ++k) {
      for (int64_t i = 0; i < J; ++i)
        v[i] = features[j * J + i] - features[k * J + i];
      const double norm = std::sqrt(dot(v.data(), solve(l, J, v).data(), J));
      if (best.first < 0 || norm > best.score) best = {j, k, norm};
    }
  return best;
}

}  // namespace tailor::elicit
