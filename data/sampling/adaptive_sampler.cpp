#include "data/sampling/adaptive_sampler.h"

#include <algorithm>
#include <limits>
#include <random>
#include <string>
#include <utility>

#include "common/error.h"
#include "common/seeded_random.h"

namespace tailor {

namespace {

// Separate streams for the per-phase shuffles and the per-step tail draws.
constexpr uint64_t kPhaseStream = 0x7068617365ULL;  // "phase"
constexpr uint64_t kTailStream = 0x7461696cULL;     // "tail"

std::mt19937_64 engine_for(uint64_t seed, uint64_t stream, int64_t index) {
  return std::mt19937_64(
      splitmix64(splitmix64(splitmix64(seed) ^ stream) ^ static_cast<uint64_t>(index)));
}

// Splits `total` into parts proportional to `weights` (sum > 0) by the largest-remainder
// (Hamilton) method; equal remainders go to the earlier entry. Exact integer arithmetic.
std::vector<int64_t> largest_remainder(int64_t total, const std::vector<int64_t>& weights) {
  int64_t sum = 0;
  for (int64_t w : weights)
    sum += w;
  std::vector<int64_t> parts(weights.size());
  std::vector<int64_t> remainder(weights.size());
  int64_t given = 0;
  for (size_t g = 0; g < weights.size(); ++g) {
    parts[g] = total * weights[g] / sum;
    remainder[g] = total * weights[g] % sum;
    given += parts[g];
  }
  for (int64_t left = total - given; left > 0; --left) {
    size_t best = 0;
    for (size_t g = 1; g < weights.size(); ++g) {
      if (remainder[g] > remainder[best]) best = g;
    }
    ++parts[best];
    remainder[best] = -1;  // at most one extra each (left < number of parts)
  }
  return parts;
}

}  // namespace

AdaptiveSampler::AdaptiveSampler(AdaptiveSamplingOptions options) : options_(std::move(options)) {
  const auto& order = options_.order;
  const auto n = static_cast<int64_t>(order.size());
  if (n < 1) throw Error("recipe", "train.adaptive_order: expected at least one user, got none");
  position_.assign(static_cast<size_t>(n), -1);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t user = order[static_cast<size_t>(i)];
    if (user < 0 || user >= n) {
      throw Error("recipe", "train.adaptive_order: expected a permutation of 0.." +
                                std::to_string(n - 1) + ", got " + std::to_string(user) +
                                " at position " + std::to_string(i));
    }
    if (position_[static_cast<size_t>(user)] >= 0) {
      throw Error("recipe", "train.adaptive_order: expected a permutation of 0.." +
                                std::to_string(n - 1) + ", user " + std::to_string(user) +
                                " appears twice (positions " +
                                std::to_string(position_[static_cast<size_t>(user)]) + " and " +
                                std::to_string(i) + ")");
    }
    position_[static_cast<size_t>(user)] = i;
  }

  const auto& r = options_.ratio;
  const std::string ratio_text =
      std::to_string(r[0]) + ":" + std::to_string(r[1]) + ":" + std::to_string(r[2]);
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  for (const int64_t x : r) {
    if (x < 0 || x > kMax / 4) {
      throw Error("recipe", "train.adaptive_ratio: expected three counts A:B:C in [0, 2^61), got " +
                                ratio_text);
    }
  }
  const int64_t ratio_sum = r[0] + r[1] + r[2];
  if (ratio_sum == 0) {
    throw Error("recipe",
                "train.adaptive_ratio: expected at least one positive count, got " + ratio_text);
  }
  // B is never empty; without B's share, phase 0 draws only from A and the last phase only from C.
  if (r[1] == 0 && (n == 1 || r[0] == 0 || r[2] == 0)) {
    throw Error("recipe", "train.adaptive_ratio: " + ratio_text +
                              " leaves a phase with nothing to sample (B has weight 0 and phase 0 "
                              "has no C, the last phase no A)");
  }
  if (options_.steps_per_phase < 1) {
    throw Error("recipe", "train.steps_per_phase: expected >= 1, got " +
                              std::to_string(options_.steps_per_phase));
  }
  if (options_.batch_size < 1) {
    throw Error("recipe",
                "train.batch_size: expected >= 1, got " + std::to_string(options_.batch_size));
  }
  // Keep samples-per-phase x ratio sum (the largest-remainder products) and the tail's first
  // step (n x steps_per_phase) within int64.
  if (options_.steps_per_phase > kMax / options_.batch_size ||
      options_.steps_per_phase * options_.batch_size > kMax / ratio_sum ||
      options_.steps_per_phase > kMax / n) {
    throw Error("recipe", "train.steps_per_phase x train.batch_size x ratio: too large (" +
                              std::to_string(options_.steps_per_phase) + " x " +
                              std::to_string(options_.batch_size) + " x " + ratio_text + ")");
  }
}

int64_t AdaptiveSampler::phase_of_step(int64_t step) const {
  if (step < 0) throw Error("sampling", "negative step " + std::to_string(step));
  return std::min(step / options_.steps_per_phase, num_phases());
}

char AdaptiveSampler::group_of(int32_t user, int64_t phase) const {
  if (user < 0 || user >= num_users()) {
    throw Error("sampling", "user " + std::to_string(user) + " out of range [0, " +
                                std::to_string(num_users()) + ")");
  }
  if (phase < 0) throw Error("sampling", "negative phase " + std::to_string(phase));
  const int64_t pos = position_[static_cast<size_t>(user)];
  if (phase >= num_phases() || pos < phase) return 'C';
  return pos == phase ? 'B' : 'A';
}

std::vector<int64_t> AdaptiveSampler::phase_counts(int64_t phase) const {
  const int64_t n = num_users();
  if (phase < 0 || phase >= n) {
    throw Error("sampling",
                "phase " + std::to_string(phase) + " out of range [0, " + std::to_string(n) + ")");
  }
  // Users of A, B, C in visiting order.
  const auto& order = options_.order;
  const std::array<std::pair<int64_t, int64_t>, 3> ranges = {std::make_pair(phase + 1, n),
                                                             std::make_pair(phase, phase + 1),
                                                             std::make_pair(int64_t{0}, phase)};
  std::vector<int64_t> weights(3);
  for (size_t g = 0; g < 3; ++g) {
    weights[g] = ranges[g].second > ranges[g].first ? options_.ratio[g] : 0;
  }
  const std::vector<int64_t> per_group =
      largest_remainder(options_.steps_per_phase * options_.batch_size, weights);

  std::vector<int64_t> counts(static_cast<size_t>(n), 0);
  for (size_t g = 0; g < 3; ++g) {
    const auto [begin, end] = ranges[g];
    const int64_t size = end - begin;
    if (size == 0) continue;
    // Even spread; the remainder to the users earliest in `order`.
    for (int64_t i = begin; i < end; ++i) {
      counts[static_cast<size_t>(order[static_cast<size_t>(i)])] =
          per_group[g] / size + (i - begin < per_group[g] % size ? 1 : 0);
    }
  }
  return counts;
}

std::vector<int32_t> AdaptiveSampler::users_for_step(int64_t step) const {
  const int64_t phase = phase_of_step(step);
  const int64_t n = num_users();
  const int64_t batch = options_.batch_size;
  std::vector<int32_t> users(static_cast<size_t>(batch));
  if (phase == n) {
    std::mt19937_64 engine = engine_for(options_.seed, kTailStream, step);
    for (auto& u : users)
      u = static_cast<int32_t>(uniform_below(engine, static_cast<uint64_t>(n)));
    return users;
  }
  // The phase's multiset of users in visiting order, then Fisher–Yates (Knuth, TAOCP vol. 2,
  // Algorithm P).
  const std::vector<int64_t> counts = phase_counts(phase);
  std::vector<int32_t> samples;
  samples.reserve(static_cast<size_t>(options_.steps_per_phase * batch));
  for (const int32_t user : options_.order) {
    samples.insert(samples.end(), static_cast<size_t>(counts[static_cast<size_t>(user)]), user);
  }
  std::mt19937_64 engine = engine_for(options_.seed, kPhaseStream, phase);
  for (auto i = static_cast<int64_t>(samples.size()) - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(uniform_below(engine, static_cast<uint64_t>(i) + 1));
    std::swap(samples[static_cast<size_t>(i)], samples[static_cast<size_t>(j)]);
  }
  const int64_t first = (step - phase * options_.steps_per_phase) * batch;
  std::copy(samples.begin() + first, samples.begin() + first + batch, users.begin());
  return users;
}

}  // namespace tailor
