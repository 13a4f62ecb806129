// Simulated users over a rated corpus (data/preferences/rated_corpus.h): a user is a weight vector
// w on the aspect simplex, its score of a response is w . ratings, and it prefers the higher score.
// Settings follow the seed reports (docs/reward_modeling.md, "Data").
//
// Dimension legend: A aspects, U users.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common/enum_names.h"
#include "data/preferences/rated_corpus.h"

namespace tailor::data {

// Where a run's users come from (recipe key users.kind): one of the settings make_users builds, or
// from_data, the users named by the data's own `user` field.
enum class UserKind { kTwoConflict, kUniform, kRandom, kClustered, kFromData };
const EnumNames<UserKind>&
user_kind_names();  // two_conflict, uniform, random, clustered, from_data
const std::string& to_string(UserKind kind);

// How a user's scores become a label (recipe key users.label).
enum class LabelMode { kArgmax, kBradleyTerry };
const EnumNames<LabelMode>& label_mode_names();  // argmax, bradley_terry
const std::string& to_string(LabelMode mode);

struct SimulatedUser {
  std::string name;             // "user<i>"
  std::vector<double> weights;  // [A], non-negative, sums to 1
};

// Users of a named setting, named "user0".."user<count-1>":
//   "two_conflict": count 2, A >= 2: [1, 0, 0, ...] and [0, 1, 0, ...] (helpfulness-only vs
//                   honesty-only in UltraFeedback's aspect order).
//   "uniform":      count 1: [1/A, ..., 1/A].
//   "random":       count - 1 users from Dirichlet(1, ..., 1), then the uniform user.
//   "clustered":    A = 4; count - 1 users split over three clusters in proportion 49:30:20
//                   (largest remainder, ties to the earlier cluster; exactly 49/30/20 for count
//                   100) drawn from Dirichlet(2.5, 2.5, 2.5, 2.5), Dirichlet(0.7, 0.3, 6, 3) and
//                   Dirichlet(7.5, 0.5, 1.2, 0.8) in that order, then the uniform user.
// Deterministic in `seed`. Throws Error("recipe", ...) naming the kind and count when they do not
// fit, and for kFromData (those users are in the data).
std::vector<SimulatedUser> make_users(UserKind kind, int64_t count, int64_t num_aspects,
                                      uint64_t seed);

// Users per cluster for make_users("clustered", count, ...): count - 1 split 49:30:20 by largest
// remainder (ties to the earlier cluster), then 1 uniform user: {49, 30, 20, 1} for count 100.
std::vector<int64_t> clustered_user_counts(int64_t count);

// Gamma(alpha, 1) by Marsaglia & Tsang (2000), "A simple method for generating gamma
// variables", with the boost Gamma(alpha) = Gamma(alpha + 1) * U^(1/alpha) for alpha < 1.
// Uses only the raw 64-bit outputs of `rng`, so results are identical on every platform.
double sample_gamma(double alpha, std::mt19937_64& rng);
// Dirichlet(alpha): independent Gamma(alpha_i) draws, normalised to sum 1.
std::vector<double> sample_dirichlet(const std::vector<double>& alpha, std::mt19937_64& rng);

// One preference label: user `user` (index into the users) prefers response `chosen` over
// `rejected` (indices into RatedCorpus::responses) for prompt `prompt`.
struct UserLabel {
  int32_t user;
  int64_t prompt;
  int64_t chosen;
  int64_t rejected;
};

struct LabelOptions {
  LabelMode mode = LabelMode::kArgmax;
  double temperature = 1.0;    // bradley_terry: P(i > j) = sigmoid((s_i - s_j) / temperature)
  bool conflict_only = false;  // keep only pairs the users disagree on (seed report's conflict)
};

// Labels every candidate pair (responses i < j of the same prompt) for every user:
// - A pair is usable for a user when every aspect with weight > 0 is rated on both responses;
//   the user's score is s = sum over those aspects of w_a * rating_a.
// - argmax: chosen = the higher score; ties (|s_i - s_j| < 1e-9) are dropped.
// - bradley_terry: chosen = i with probability sigmoid((s_i - s_j) / temperature), drawn from
//   a generator seeded with `seed` in output order; ties are kept (drawn 50/50).
// - conflict_only: a pair is kept only when it is usable and untied for EVERY user and the users'
//   preferred responses (by score) are not all the same; it is then emitted for every user
//   (labels drawn as above in bradley_terry mode).
// Output is sorted by (prompt, i, j, user). Throws Error("recipe", ...) for a bad
// temperature and Error("data", ...) when a user's weights do not have one entry per aspect.
std::vector<UserLabel> label_pairs(const RatedCorpus& corpus,
                                   const std::vector<SimulatedUser>& users,
                                   const LabelOptions& options, uint64_t seed);

namespace detail {
// Uniform double in (0, 1) from the top 53 bits of one draw (never exactly 0 or 1).
double uniform_open01(std::mt19937_64& rng);
// Uniform integer in [0, n), n > 0.
int64_t uniform_index(std::mt19937_64& rng, int64_t n);
}  // namespace detail

}  // namespace tailor::data
