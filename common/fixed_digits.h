// A number with a fixed count of decimals ("0.725"), for logs and tables.
#pragma once

#include <iomanip>
#include <sstream>
#include <string>

namespace tailor {

inline std::string fixed_digits(double v, int digits) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(digits) << v;
  return out.str();
}

}  // namespace tailor
