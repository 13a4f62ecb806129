#include "data/preferences/simulated_users.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "common/error.h"

namespace tailor::data {

const EnumNames<UserKind>& user_kind_names() {
  static const EnumNames<UserKind> table = {{"two_conflict", UserKind::kTwoConflict},
                                            {"uniform", UserKind::kUniform},
                                            {"random", UserKind::kRandom},
                                            {"clustered", UserKind::kClustered},
                                            {"from_data", UserKind::kFromData}};
  return table;
}

const std::string& to_string(UserKind kind) {
  return enum_name(user_kind_names(), kind);
}

const EnumNames<LabelMode>& label_mode_names() {
  static const EnumNames<LabelMode> table = {{"argmax", LabelMode::kArgmax},
                                             {"bradley_terry", LabelMode::kBradleyTerry}};
  return table;
}

const std::string& to_string(LabelMode mode) {
  return enum_name(label_mode_names(), mode);
}

namespace detail {

double uniform_open01(std::mt19937_64& rng) {
  // (k + 0.5) / 2^53 for k in [0, 2^53): strictly inside (0, 1), so log() is always finite.
  return (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53;
}

int64_t uniform_index(std::mt19937_64& rng, int64_t n) {
  if (n <= 0) throw Error("data", "uniform_index: empty range");
  const int64_t k = static_cast<int64_t>(uniform_open01(rng) * static_cast<double>(n));
  return std::min(k, n - 1);
}

}  // namespace detail

namespace {

constexpr double kPi = 3.14159265358979323846;

// Standard normal by Box–Muller (one of the pair; simple and platform-independent).
double standard_normal(std::mt19937_64& rng) {
  const double u1 = detail::uniform_open01(rng);
  const double u2 = detail::uniform_open01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * kPi * u2);
}

std::vector<double> uniform_weights(int64_t num_aspects) {
  return std::vector<double>(static_cast<size_t>(num_aspects), 1.0 / num_aspects);
}

[[noreturn]] void bad_users(UserKind kind, int64_t count, int64_t num_aspects,
                            const std::string& why) {
  throw Error("recipe", "users '" + to_string(kind) + "' with count " + std::to_string(count) +
                            " and " + std::to_string(num_aspects) + " aspects: " + why);
}

}  // namespace

double sample_gamma(double alpha, std::mt19937_64& rng) {
  if (!(alpha > 0.0) || !std::isfinite(alpha))
    throw Error("data", "gamma shape must be a positive number, got " + std::to_string(alpha));
  if (alpha < 1.0) {
    // Boost (Marsaglia & Tsang 2000, section 6): Gamma(a) = Gamma(a + 1) * U^(1/a).
    const double g = sample_gamma(alpha + 1.0, rng);
    return g * std::pow(detail::uniform_open01(rng), 1.0 / alpha);
  }
  const double d = alpha - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9.0 * d);
  while (true) {
    double x, v;
    do {
      x = standard_normal(rng);
      v = 1.0 + c * x;
    } while (v <= 0.0);
    v = v * v * v;
    const double u = detail::uniform_open01(rng);
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;  // squeeze
    if (std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
  }
}

std::vector<double> sample_dirichlet(const std::vector<double>& alpha, std::mt19937_64& rng) {
  std::vector<double> w;
  double sum = 0.0;
  for (double a : alpha) {
    w.push_back(sample_gamma(a, rng));
    sum += w.back();
  }
  // All draws underflowing to 0 is possible only for tiny alphas; fall back to uniform then.
  if (!(sum > 0.0)) return uniform_weights(static_cast<int64_t>(alpha.size()));
  for (double& x : w)
    x /= sum;
  return w;
}

std::vector<int64_t> clustered_user_counts(int64_t count) {
  if (count < 1)
    throw Error("recipe", "clustered users need count >= 1, got " + std::to_string(count));
  const std::array<int64_t, 3> shares = {49, 30, 20};  // seed report's cluster sizes
  const int64_t total_share = 49 + 30 + 20, n = count - 1;
  std::vector<int64_t> sizes(4, 0);
  std::array<int64_t, 3> remainders{};
  int64_t assigned = 0;
  for (size_t k = 0; k < 3; ++k) {
    sizes[k] = n * shares[k] / total_share;
    remainders[k] = n * shares[k] % total_share;
    assigned += sizes[k];
  }
  // Largest remainder; the stable sort keeps the earlier cluster first on ties.
  std::array<size_t, 3> order = {0, 1, 2};
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return remainders[a] > remainders[b]; });
  for (size_t i = 0; assigned < n; ++i, ++assigned)
    ++sizes[order[i]];
  sizes[3] = 1;  // the uniform user
  return sizes;
}

std::vector<SimulatedUser> make_users(UserKind kind, int64_t count, int64_t num_aspects,
                                      uint64_t seed) {
  if (num_aspects < 1) bad_users(kind, count, num_aspects, "need at least one aspect");
  std::vector<std::vector<double>> weights;
  std::mt19937_64 rng(seed);
  if (kind == UserKind::kTwoConflict) {
    if (count != 2) bad_users(kind, count, num_aspects, "the two-user conflict needs count 2");
    if (num_aspects < 2) bad_users(kind, count, num_aspects, "needs at least 2 aspects");
    for (int64_t u = 0; u < 2; ++u) {
      weights.emplace_back(static_cast<size_t>(num_aspects), 0.0);
      weights.back()[static_cast<size_t>(u)] = 1.0;
    }
  } else if (kind == UserKind::kUniform) {
    if (count != 1) bad_users(kind, count, num_aspects, "the uniform user needs count 1");
    weights.push_back(uniform_weights(num_aspects));
  } else if (kind == UserKind::kRandom) {
    if (count < 1) bad_users(kind, count, num_aspects, "needs count >= 1");
    const std::vector<double> ones(static_cast<size_t>(num_aspects), 1.0);
    for (int64_t u = 0; u + 1 < count; ++u)
      weights.push_back(sample_dirichlet(ones, rng));
    weights.push_back(uniform_weights(num_aspects));
  } else if (kind == UserKind::kClustered) {
    if (count < 1) bad_users(kind, count, num_aspects, "needs count >= 1");
    if (num_aspects != 4)
      bad_users(kind, count, num_aspects, "the clusters are defined over 4 aspects");
    // Seed report's clusters and their sizes for 100 users (49 + 30 + 20 + uniform).
    const std::array<std::vector<double>, 3> alphas = {std::vector<double>{2.5, 2.5, 2.5, 2.5},
                                                       std::vector<double>{0.7, 0.3, 6, 3},
                                                       std::vector<double>{7.5, 0.5, 1.2, 0.8}};
    const std::vector<int64_t> sizes = clustered_user_counts(count);
    for (size_t k = 0; k < 3; ++k) {
      for (int64_t u = 0; u < sizes[k]; ++u)
        weights.push_back(sample_dirichlet(alphas[k], rng));
    }
    weights.push_back(uniform_weights(num_aspects));
  } else {
    throw Error("recipe",
                "users.kind from_data: the users come from the data's `user` field, "
                "not from make_users");
  }
  std::vector<SimulatedUser> users;
  for (size_t u = 0; u < weights.size(); ++u)
    users.push_back({"user" + std::to_string(u), std::move(weights[u])});
  return users;
}

namespace {

// Score of response r for weights w, or NaN when an aspect with weight > 0 is not rated.
double score(const RatedCorpus& corpus, const std::vector<double>& w, int64_t r) {
  double s = 0.0;
  for (int64_t a = 0; a < corpus.num_aspects(); ++a) {
    if (w[static_cast<size_t>(a)] <= 0.0) continue;
    const float rating = corpus.ratings[static_cast<size_t>(r * corpus.num_aspects() + a)];
    if (std::isnan(rating)) return std::nan("");
    s += w[static_cast<size_t>(a)] * rating;
  }
  return s;
}

constexpr double kTie = 1e-9;

}  // namespace

std::vector<UserLabel> label_pairs(const RatedCorpus& corpus,
                                   const std::vector<SimulatedUser>& users,
                                   const LabelOptions& options, uint64_t seed) {
  corpus.validate();
  const bool bradley_terry = options.mode == LabelMode::kBradleyTerry;
  if (bradley_terry && !(options.temperature > 0.0)) {
    throw Error("recipe",
                "label temperature must be > 0, got " + std::to_string(options.temperature));
  }
  for (const SimulatedUser& user : users) {
    if (static_cast<int64_t>(user.weights.size()) != corpus.num_aspects()) {
      throw Error("data", user.name + " has " + std::to_string(user.weights.size()) +
                              " weights for a corpus with " + std::to_string(corpus.num_aspects()) +
                              " aspects");
    }
  }
  // Responses of each prompt, in index order.
  std::vector<std::vector<int64_t>> by_prompt(corpus.prompts.size());
  for (int64_t r = 0; r < corpus.num_responses(); ++r)
    by_prompt[static_cast<size_t>(corpus.response_prompt[static_cast<size_t>(r)])].push_back(r);

  std::mt19937_64 rng(seed);
  std::vector<UserLabel> out;
  const size_t U = users.size();
  std::vector<double> diff(U);
  for (size_t p = 0; p < by_prompt.size(); ++p) {
    const std::vector<int64_t>& rs = by_prompt[p];
    for (size_t a = 0; a < rs.size(); ++a) {
      for (size_t b = a + 1; b < rs.size(); ++b) {
        const int64_t i = rs[a], j = rs[b];
        for (size_t u = 0; u < U; ++u)
          diff[u] = score(corpus, users[u].weights, i) - score(corpus, users[u].weights, j);
        if (options.conflict_only) {
          bool keep = true, prefers_i = false, prefers_j = false;
          for (double d : diff) {
            if (std::isnan(d) || std::abs(d) < kTie) keep = false;
            (d > 0 ? prefers_i : prefers_j) = true;
          }
          if (!keep || !(prefers_i && prefers_j)) continue;
        }
        for (size_t u = 0; u < U; ++u) {
          const double d = diff[u];
          if (std::isnan(d)) continue;  // an aspect the user weighs is not rated
          bool i_wins;
          if (bradley_terry) {
            // Bradley & Terry (1952): P(i > j) = sigmoid((s_i - s_j) / T).
            const double p_i = 1.0 / (1.0 + std::exp(-d / options.temperature));
            i_wins = detail::uniform_open01(rng) < p_i;
          } else {
            if (std::abs(d) < kTie) continue;
            i_wins = d > 0;
          }
          out.push_back(
              {static_cast<int32_t>(u), static_cast<int64_t>(p), i_wins ? i : j, i_wins ? j : i});
        }
      }
    }
  }
  return out;
}

}  // namespace tailor::data
