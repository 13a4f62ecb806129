// Adaptive continual sampling (seed report §4.2.2; docs/reward_modeling.md):
// which user each training sample of a step comes from.
//
// Users move through three groups: A (still to train), B (in training, one user), C (finished).
// With n users and a fixed visiting `order`, phase p (0 <= p < n) has
//   B = {order[p]},  C = {order[0], ..., order[p-1]},  A = {order[p+1], ..., order[n-1]}
// and lasts steps_per_phase optimizer steps of batch_size samples (S = steps * batch samples).
// Over one phase the samples drawn from A : B : C are exactly ratio[0] : ratio[1] : ratio[2]
// among the non-empty groups (phase 0 has no C, phase n-1 no A; the ratio is renormalised over
// the others), rounded by largest remainder (ties to the earlier group, A before B before C);
// inside a group, samples are spread as evenly as possible over its users (the remainder going
// to the users earlier in `order`). The phase's S samples are then shuffled (seeded by
// (seed, phase)) and cut into consecutive steps. Weighting by sampling keeps one forward and
// backward per step.
// After the last phase (step >= n * steps_per_phase) every slot is an independent uniform draw
// over all users from a generator seeded by (seed, step).
//
// Everything is a pure function of (options, step): no state to checkpoint. Only the raw output
// of std::mt19937_64 is used (no std:: distributions), so the draws agree across platforms.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace tailor {

struct AdaptiveSamplingOptions {
  std::vector<int32_t> order;             // a permutation of the user indices 0..n-1
  std::array<int64_t, 3> ratio{1, 2, 4};  // samples from A : B : C over a phase
  int64_t steps_per_phase = 0;            // >= 1
  int64_t batch_size = 0;                 // samples per step, >= 1
  uint64_t seed = 0;
};

class AdaptiveSampler {
 public:
  // Validates the options; throws Error("recipe", ...) naming the offending field
  // (train.adaptive_order, train.adaptive_ratio, train.steps_per_phase, train.batch_size).
  explicit AdaptiveSampler(AdaptiveSamplingOptions options);

  // The user index of each of the batch_size samples of `step` (>= 0). Builds and shuffles the
  // step's phase (O(steps_per_phase * batch_size) time and memory), nothing is cached.
  std::vector<int32_t> users_for_step(int64_t step) const;

  // Per-user sample counts over phase p < n, before shuffling (what users_for_step draws over
  // the phase's steps), [n] indexed by user.
  std::vector<int64_t> phase_counts(int64_t phase) const;

  int64_t num_users() const { return static_cast<int64_t>(options_.order.size()); }
  int64_t num_phases() const { return num_users(); }
  // min(step / steps_per_phase, n): n means the uniform tail.
  int64_t phase_of_step(int64_t step) const;
  // 'A', 'B' or 'C' for `user` in `phase`; every user is 'C' in the tail (phase >= n).
  char group_of(int32_t user, int64_t phase) const;

  const AdaptiveSamplingOptions& options() const { return options_; }

 private:
  AdaptiveSamplingOptions options_;
  std::vector<int64_t> position_;  // position_[user] = index of user in order
};

}  // namespace tailor
