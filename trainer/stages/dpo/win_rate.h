// The seed's evaluation of a personalised model: on held-out prompts, a completion from the
// user's adapter and one from the base (same sampling settings and seeds) go to the user's judge,
// which prefers one or calls a tie. The win rate is the adapter's share, ties counted half.
// The cross-user matrix judges adapter i's completions by user j's judge; personalisation shows
// as a strong diagonal.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "trainer/judges/judge.h"

namespace tailor {

// +1: a is preferred, -1: b is preferred, 0: a tie.
using Judge =
    std::function<int(const std::string& prompt, const std::string& a, const std::string& b)>;

struct Comparison {
  std::string prompt;
  std::string adapter;  // the adapter's completion
  std::string base;     // the base's completion, same sampling settings and seed
};

struct WinRate {
  int64_t wins = 0, ties = 0, losses = 0;
  double rate() const;  // (wins + ties / 2) / (wins + ties + losses); NaN when empty
};

// Each comparison judged once with the adapter's completion first and once with it second, so a
// judge that favours a position cannot bias the rate; a comparison whose two verdicts disagree
// counts as a tie.
WinRate win_rate(const std::vector<Comparison>& comparisons, const Judge& judge);

// The same with a judges::Judge (an oracle mixture or a reward model): every adapter's
// comparisons (comparisons[i], both orders each) go to the judge in one compare() call, so a
// reward model scores each distinct (prompt, completion) once. Result i: adapter i's win rate.
std::vector<WinRate> win_rates(const std::vector<std::vector<Comparison>>& comparisons,
                               judges::Judge& judge);

// matrix[i][j]: adapter i's comparisons (comparisons[i]) judged by judges[j].
std::vector<std::vector<double>> cross_user_win_rates(
    const std::vector<std::vector<Comparison>>& comparisons, const std::vector<Judge>& judges);

}  // namespace tailor
