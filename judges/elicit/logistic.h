// The small float64 pieces the elicitation maths shares: a dot product and the logistic
// function, each written once so that every criterion rounds the same way.
#pragma once

#include <cmath>
#include <cstdint>

namespace tailor::elicit {

inline double dot(const double* a, const double* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i)
    s += a[i] * b[i];
  return s;
}

// 1 / (1 + e^-x), without overflow for large |x|.
inline double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

}  // namespace tailor::elicit
