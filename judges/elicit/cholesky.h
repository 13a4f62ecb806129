// Dense Cholesky factorisation and solve for the small symmetric positive definite systems of
// the elicitation maths (PReF's J x J Hessian, the D x D ridge system), written once.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"

namespace tailor::elicit {

// Out of line so that the error's string building is not inlined into the numeric loops (where
// GCC 12 warns falsely about it).
[[noreturn, gnu::noinline]] inline void throw_not_positive_definite(const char* what) {
  throw Error("elicit", std::string(what) + " is not positive definite");
}

// Cholesky factor L (lower, row-major) of a symmetric positive definite [n, n] matrix; `what`
// names the matrix in the error when it is not positive definite.
inline std::vector<double> cholesky(const std::vector<double>& a, int64_t n, const char* what) {
  std::vector<double> l(a.size(), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      double s = a[i * n + j];
      for (int64_t k = 0; k < j; ++k)
        s -= l[i * n + k] * l[j * n + k];
      if (i == j) {
        if (!(s > 0)) throw_not_positive_definite(what);
        l[i * n + i] = std::sqrt(s);
      } else {
        l[i * n + j] = s / l[j * n + j];
      }
    }
  return l;
}

// b := A^-1 b from A's Cholesky factor; b is one column read and written with stride `stride`.
inline void cholesky_solve_in_place(const std::vector<double>& l, int64_t n, double* b,
                                    int64_t stride = 1) {
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < i; ++k)
      b[i * stride] -= l[i * n + k] * b[k * stride];
    b[i * stride] /= l[i * n + i];
  }
  for (int64_t i = n - 1; i >= 0; --i) {
    for (int64_t k = i + 1; k < n; ++k)
      b[i * stride] -= l[k * n + i] * b[k * stride];
    b[i * stride] /= l[i * n + i];
  }
}

}  // namespace tailor::elicit
