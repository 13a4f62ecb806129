// PReF's new user: a reward r(x, y) = lambda . phi(x, y) over J shared features, fitted from the
// user's answers by L2-regularised logistic regression, and the next question chosen where the
// fit is least certain: the candidate pair whose feature difference v has the largest norm
// sqrt(v^T H^-1 v), H = sum_i sigmoid'(lambda . v_i) v_i v_i^T + beta I the Hessian of the fit.
// Plain float64 (J is ~6).
#pragma once

#include <cstdint>
#include <vector>

#include "judges/elicit/preference_posterior.h"
#include "judges/elicit/question_choice.h"

namespace tailor::elicit {

struct UserFit {
  std::vector<double> lambda;   // [J]
  std::vector<double> hessian;  // [J, J] row-major, at lambda
  int64_t iterations = 0;       // Newton steps taken
};

// H = sum over answers (choice != 0) of s(1 - s) v v^T + l2 I, s = sigmoid(lambda . v).
std::vector<double> fit_hessian(int64_t J, const std::vector<Answer>& answers,
                                const std::vector<double>& lambda, double l2);

// argmin over lambda of sum_i log(1 + exp(-c_i lambda . v_i)) + (l2 / 2) |lambda|^2 (answers
// with choice 0 carry no term), by Newton's method from 0 until a step is below 1e-12 in norm.
// l2 > 0 makes the problem strictly convex, so it has one minimum, even with no answers (0).
UserFit fit_user(int64_t J, const std::vector<Answer>& answers, double l2);

// The pair of candidates (features [N, J]) whose difference has the largest H^-1 norm; score is
// that norm. Ties go to the first pair in (j, k) order.
Question choose_uncertain_pair(int64_t J, const std::vector<double>& hessian,
                               const std::vector<double>& features);

}  // namespace tailor::elicit
