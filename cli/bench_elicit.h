// tailor bench --suite elicit: how long a person waits for the next 20 Questions question. Each
// question is one posterior sampling run (Metropolis-Hastings, M samples after burn-in and
// thinning, in the embedding's d dimensions) plus the choice of a pair among N candidates, timed
// through the query loop itself (stages/elicit/query_loop.h) on synthetic embeddings: random
// candidates h ~ N(0, I) and a planted user who answers by the sign of w* . (h1 - h2). The
// generation of candidates is not included (a session samples them ahead, before the first
// question).
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

namespace tailor::cli {

struct ElicitBench {
  std::vector<int64_t> candidates = {64, 128};  // N
  int64_t dim = 128;                            // d
  int64_t samples = 100;                        // M
  int64_t estimate_samples = 1000;              // E (the recipes' default)
  int64_t burn_in = 1000;
  int64_t thinning = 50;
  int64_t questions = 20;  // K
};

// Prints a table (one row per N and selector: ms per question, mean and slowest) and returns
// the rows.
nlohmann::json bench_elicit(const ElicitBench& options);

}  // namespace tailor::cli
