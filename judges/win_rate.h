// The seed's evaluation of a personalised model: on held-out prompts, a completion from the
// user's adapter and one from the base (same sampling settings and seeds) go to the user's judge,
// which prefers one or calls a tie. The win rate is the adapter's share, ties counted half.
// The cross-user matrix judges adapter i's completions by user j's judge; personalisation shows
// as a strong diagonal.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "judges/judge.h"

namespace tailor {

struct Comparison {
  std::string prompt;
  std::string adapter;  // the adapter's completion
  std::string base;     // the base's completion, same sampling settings and seed
  // An invalid answer (empty, or cut at max_new_tokens without EOS: is_invalid_answer) never
  // wins: it loses to a valid one whatever the judge thinks, and two invalid answers tie. Such
  // comparisons do not go to the judge. An empty answer is the shortest there is, so a judge
  // that likes short answers would otherwise crown an adapter that says nothing.
  bool adapter_invalid = false;
  bool base_invalid = false;
};

// Whether a sampled answer may not win: it holds only whitespace, or it stopped at
// max_new_tokens instead of ending with EOS (`truncated`).
bool is_invalid_answer(const std::string& text, bool truncated);

struct WinRate {
  int64_t wins = 0, ties = 0, losses = 0;
  double rate() const;  // (wins + ties / 2) / (wins + ties + losses); NaN when empty
};

// Adapter i's win rate over comparisons[i] under `judge` (an oracle mixture or a reward model).
// Each comparison is judged once with the adapter's completion first and once with it second,
// so a judge that favours a position cannot bias the rate; a comparison whose two verdicts
// disagree counts as a tie. Comparisons with an invalid answer are decided as Comparison says.
// Every comparison goes to the judge in one compare() call, so a reward model scores each distinct
// (prompt, completion) once. The cross-user matrix is one call per judge with every adapter's
// comparisons (column j: judge j's rates of adapters 0..n-1).
std::vector<WinRate> win_rates(const std::vector<std::vector<Comparison>>& comparisons,
                               judges::Judge& judge);

}  // namespace tailor
