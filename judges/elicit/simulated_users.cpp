#include "judges/elicit/simulated_users.h"

#include <cmath>

#include "common/error.h"
#include "data/preferences/simulated_users.h"

namespace tailor::elicit {

void SimulatedUsersConfig::validate() const {
  if (count < 1) throw Error("elicit", "simulated users: count must be at least 1");
  if (!(dirichlet_alpha > 0) || !std::isfinite(dirichlet_alpha))
    throw Error("elicit", "simulated users: dirichlet_alpha must be a positive number");
  if (!(flip_probability >= 0 && flip_probability <= 1))
    throw Error("elicit", "simulated users: flip_probability must be in [0, 1]");
}

std::vector<std::map<std::string, double>> simulated_users(const std::vector<std::string>& oracles,
                                                           const SimulatedUsersConfig& config) {
  config.validate();
  if (oracles.empty()) throw Error("elicit", "simulated users need at least one oracle");
  std::mt19937_64 rng(config.seed);
  const std::vector<double> alpha(oracles.size(), config.dirichlet_alpha);
  std::vector<std::map<std::string, double>> users;
  for (int64_t u = 0; u < config.count; ++u) {
    // The reward stage's Dirichlet sampler (Marsaglia-Tsang on raw engine output).
    const std::vector<double> w = data::sample_dirichlet(alpha, rng);
    std::map<std::string, double> weights;
    for (size_t k = 0; k < oracles.size(); ++k) {
      const bool flip = data::detail::uniform_open01(rng) < config.flip_probability;
      weights[oracles[k]] = flip ? -w[k] : w[k];
    }
    users.push_back(std::move(weights));
  }
  return users;
}

}  // namespace tailor::elicit
