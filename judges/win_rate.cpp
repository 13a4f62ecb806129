#include "judges/win_rate.h"

#include <limits>

#include "common/error.h"

namespace tailor {

double WinRate::rate() const {
  const int64_t n = wins + ties + losses;
  if (n == 0) return std::numeric_limits<double>::quiet_NaN();
  return (static_cast<double>(wins) + 0.5 * static_cast<double>(ties)) / static_cast<double>(n);
}

bool is_invalid_answer(const std::string& text, bool truncated) {
  if (truncated) return true;
  // ASCII whitespace only: sampled text that is all U+00A0 or similar is not worth a rule.
  return text.find_first_not_of(" \t\n\r\f\v") == std::string::npos;
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
  std::vector<judges::Matchup> matchups;  // per valid comparison: adapter first, then base first
  for (const auto& list : comparisons)
    for (const auto& c : list) {
      if (c.adapter_invalid || c.base_invalid) continue;
      matchups.push_back({c.prompt, c.adapter, c.base});
      matchups.push_back({c.prompt, c.base, c.adapter});
    }
  const std::vector<int> verdicts = matchups.empty() ? std::vector<int>() : judge.compare(matchups);
  if (verdicts.size() != matchups.size())
    throw Error("dpo", "a judge gave " + std::to_string(verdicts.size()) + " verdicts for " +
                           std::to_string(matchups.size()) + " comparisons");
  std::vector<WinRate> out(comparisons.size());
  size_t next = 0;
  for (size_t i = 0; i < comparisons.size(); ++i)
    for (const Comparison& c : comparisons[i]) {
      if (c.adapter_invalid && c.base_invalid) {
        ++out[i].ties;
      } else if (c.adapter_invalid) {
        ++out[i].losses;
      } else if (c.base_invalid) {
        ++out[i].wins;
      } else {
        count(verdicts[next], verdicts[next + 1], &out[i]);
        next += 2;
      }
    }
  return out;
}

}  // namespace tailor
