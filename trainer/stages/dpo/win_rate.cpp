#include "trainer/stages/dpo/win_rate.h"

#include <limits>

#include "common/error.h"

namespace tailor {

double WinRate::rate() const {
  const int64_t n = wins + ties + losses;
  if (n == 0) return std::numeric_limits<double>::quiet_NaN();
  return (static_cast<double>(wins) + 0.5 * static_cast<double>(ties)) / static_cast<double>(n);
}

WinRate win_rate(const std::vector<Comparison>& comparisons, const Judge& judge) {
  WinRate out;
  for (const auto& c : comparisons) {
    const int first = judge(c.prompt, c.adapter, c.base);   // +1: adapter preferred
    const int second = judge(c.prompt, c.base, c.adapter);  // -1: adapter preferred
    const int adapter_first = first > 0 ? 1 : (first < 0 ? -1 : 0);
    const int adapter_second = second < 0 ? 1 : (second > 0 ? -1 : 0);
    if (adapter_first == 1 && adapter_second == 1) {
      ++out.wins;
    } else if (adapter_first == -1 && adapter_second == -1) {
      ++out.losses;
    } else {
      ++out.ties;
    }
  }
  return out;
}

std::vector<std::vector<double>> cross_user_win_rates(
    const std::vector<std::vector<Comparison>>& comparisons, const std::vector<Judge>& judges) {
  if (comparisons.size() != judges.size())
    throw Error("dpo", "cross-user win rates need one judge per adapter (" +
                           std::to_string(comparisons.size()) + " adapters, " +
                           std::to_string(judges.size()) + " judges)");
  std::vector<std::vector<double>> matrix(comparisons.size());
  for (size_t i = 0; i < comparisons.size(); ++i)
    for (const auto& judge : judges)
      matrix[i].push_back(win_rate(comparisons[i], judge).rate());
  return matrix;
}

}  // namespace tailor
