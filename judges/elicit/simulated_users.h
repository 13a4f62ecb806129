// PReF's simulated training users: each a mixture of the training oracles with Dirichlet(alpha)
// weights, each weight's sign flipped with probability `flip_probability` (a user who likes
// newlines next to one who avoids them), so the users' answers span a low-rank space with both
// directions of every oracle in it. The weights come from data/preferences/simulated_users.h's
// Dirichlet sampler, which uses raw mt19937_64 output only, so a seed gives the same users on
// every platform.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tailor::elicit {

struct SimulatedUsersConfig {
  int64_t count = 0;
  double dirichlet_alpha = 1.0;  // 1 = uniform on the simplex; small = one oracle dominates
  double flip_probability = 0.5;
  uint64_t seed = 0;
  void validate() const;  // throws naming the field
};

// `config.count` users over `oracles` (weights' absolute values sum to 1 per user).
std::vector<std::map<std::string, double>> simulated_users(const std::vector<std::string>& oracles,
                                                           const SimulatedUsersConfig& config);

}  // namespace tailor::elicit
