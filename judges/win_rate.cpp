#include "judges/win_rate.h"

#include <limits>

#include "common/error.h"

namespace tailor {

double WinRate::rate() const {
  const int64_t n = wins + ties + losses;
  if (n == 0) return std::numeric_limits<double>::quiet_NaN();
  return (static_cast<double>(wins) + 0.5 * static_cast<double>(ties)) / static_cast<double>(n);
}

namespace {

// One comparison's two verdicts: `first` with the adapter's completion first (+1: adapter
// preferred), `second` with it second (-1: adapter preferred).
void count(int first, int second, WinRate* out) {
  const int adapter_first = first > 0 ? 1 : (first < 0 ? -1 : 0);
  const int adapter_second = second < 0 ? 1 : (second > 0 ? -1 : 0);
  if (adapter_first == 1 && adapter_second == 1) {
    ++out->wins;
  } else if (adapter_first == -1 && adapter_second == -1) {
    ++out->losses;
  } else {
    ++out->ties;
  }
}

}  // namespace

std::vector<WinRate> win_rates(const std::vector<std::vector<Comparison>>& comparisons,
                               judges::Judge& judge) {
  std::vector<judges::Matchup> matchups;  // per comparison: adapter first, then base first
  for (const auto& list : comparisons)
    for (const auto& c : list) {
      matchups.push_back({c.prompt, c.adapter, c.base});
      matchups.push_back({c.prompt, c.base, c.adapter});
    }
  const std::vector<int> verdicts = judge.compare(matchups);
  if (verdicts.size() != matchups.size())
    throw Error("dpo", "a judge gave " + std::to_string(verdicts.size()) + " verdicts for " +
                           std::to_string(matchups.size()) + " comparisons");
  std::vector<WinRate> out(comparisons.size());
  size_t next = 0;
  for (size_t i = 0; i < comparisons.size(); ++i)
    for (size_t k = 0; k < comparisons[i].size(); ++k, next += 2)
      count(verdicts[next], verdicts[next + 1], &out[i]);
  return out;
}

}  // namespace tailor
