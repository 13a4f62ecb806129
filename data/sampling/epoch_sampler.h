// Deterministic, resumable shuffling of record indices for training.
//
// Each epoch visits every index of [0, n) exactly once, in an order that is a pure function of
// (seed, epoch): a std::mt19937_64 seeded from a SplitMix64 mix of both drives a Fisher–Yates
// shuffle with unbiased rejection sampling. Only the engine's raw output is used (its sequence
// is fixed by the C++ standard, unlike std::shuffle / std::uniform_int_distribution), so orders
// agree across compilers and standard libraries; torch's RNG is not involved. The position
// (epoch, index) is all the state there is: saving it in a checkpoint and restoring it with
// set_position() continues the exact same stream.
#pragma once

#include <cstdint>
#include <vector>

namespace tailor::data {

struct SamplerPosition {
  int64_t epoch = 0;  // epochs completed
  int64_t index = 0;  // indices already drawn from the current epoch, in [0, n)
  bool operator==(const SamplerPosition& o) const { return epoch == o.epoch && index == o.index; }
  bool operator!=(const SamplerPosition& o) const { return !(*this == o); }
};

class EpochSampler {
 public:
  // n records (n >= 1); shuffle = false visits 0, 1, ..., n-1 every epoch.
  EpochSampler(int64_t n, uint64_t seed, bool shuffle = true);

  int64_t size() const { return n_; }
  uint64_t seed() const { return seed_; }

  // The visiting order of `epoch` (a permutation of 0..n-1).
  std::vector<int64_t> permutation(int64_t epoch) const;

  // The next `batch_size` indices; a batch that reaches the end of an epoch continues with the
  // next epoch's order (so every batch is full).
  std::vector<int64_t> next_batch(int64_t batch_size);

  SamplerPosition position() const { return position_; }
  // Throws Error("data", ...) unless epoch >= 0 and 0 <= index <= n (index == n means the
  // start of the next epoch).
  void set_position(const SamplerPosition& position);

 private:
  const std::vector<int64_t>& order_for(int64_t epoch);

  int64_t n_;
  uint64_t seed_;
  bool shuffle_;
  SamplerPosition position_;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> cached_order_;
};

}  // namespace tailor::data
