// A simulated user's judgement of completions, as the per-user DPO stage uses it: which of two
// completions of a prompt the user prefers (win rates, the cross-user matrix) and how the user
// ranks one prompt's K completions (pairs from the base's samples, data.source generated).
//
// Two kinds (issue 11: "the judge is either an oracle or a reward model"):
//   oracle mixture  a weighted vote of heuristic oracles (judges/oracles.h), recipe
//                   `users: {alice: {shorter_length: 1.0}}`; make_oracle_judge below.
//   reward model    a tailor reward export, Bradley–Terry or VPL with the user's context, recipe
//                   `reward_users: {carol: {model: DIR}}`; judges/reward_judge.h.
// Both answer whole lists at once, so a reward model scores every distinct (prompt, completion)
// of a call exactly once, in batches.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "judges/oracles.h"

namespace tailor::judges {

// Completions a and b of one prompt, to be compared.
struct Matchup {
  std::string prompt;
  std::string a, b;
};

// One prompt's completions, to be ranked.
struct Candidates {
  std::string prompt;
  std::vector<std::string> completions;
};

// A judge's ranking of one prompt's completions.
struct Ranking {
  std::vector<size_t> order;              // indices into the completions, best first
  std::vector<std::vector<int>> prefers;  // [i][j]: +1 prefers i to j, -1 j to i, 0 a tie
};

class Judge {
 public:
  virtual ~Judge() = default;

  // One verdict per matchup: +1 when the judge prefers a, -1 when it prefers b, 0 for a tie.
  virtual std::vector<int> compare(const std::vector<Matchup>& matchups) = 0;

  // One ranking per group. Oracle mixtures rank by Copeland score (+1 for each completion it
  // prefers this one to, -1 for each it prefers to this one; equal scores keep their order);
  // reward models by reward (equal rewards keep their order).
  virtual std::vector<Ranking> rank(const std::vector<Candidates>& groups) = 0;

  // One line for logs: "oracles {shorter_length: 1}", "reward model runs/rm/export (bt)".
  virtual std::string description() const = 0;
};

// A user as a weighted mixture of oracles: compare() is mixture_prefers(weights, ...) of each
// matchup, exactly; prefers[i][j] of a ranking likewise. Invalid weights throw Error("oracle").
std::unique_ptr<Judge> make_oracle_judge(const OracleWeights& weights);

}  // namespace tailor::judges
