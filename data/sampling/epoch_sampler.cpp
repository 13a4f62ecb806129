#include "data/sampling/epoch_sampler.h"

#include <numeric>
#include <random>
#include <string>

#include "common/error.h"
#include "common/seeded_random.h"

namespace tailor::data {

EpochSampler::EpochSampler(int64_t n, uint64_t seed, bool shuffle)
    : n_(n), seed_(seed), shuffle_(shuffle) {
  if (n < 1)
    throw Error("data", "EpochSampler needs at least one record, got " + std::to_string(n));
}

std::vector<int64_t> EpochSampler::permutation(int64_t epoch) const {
  if (epoch < 0) throw Error("data", "negative epoch " + std::to_string(epoch));
  std::vector<int64_t> order(static_cast<size_t>(n_));
  std::iota(order.begin(), order.end(), int64_t{0});
  if (!shuffle_) return order;
  std::mt19937_64 engine(splitmix64(seed_ ^ splitmix64(static_cast<uint64_t>(epoch))));
  // Fisher–Yates (Knuth, TAOCP vol. 2, Algorithm P).
  for (int64_t i = n_ - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(uniform_below(engine, static_cast<uint64_t>(i) + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

const std::vector<int64_t>& EpochSampler::order_for(int64_t epoch) {
  if (cached_epoch_ != epoch) {
    cached_order_ = permutation(epoch);
    cached_epoch_ = epoch;
  }
  return cached_order_;
}

std::vector<int64_t> EpochSampler::next_batch(int64_t batch_size) {
  if (batch_size < 1)
    throw Error("data", "batch size must be >= 1, got " + std::to_string(batch_size));
  std::vector<int64_t> batch;
  batch.reserve(static_cast<size_t>(batch_size));
  while (static_cast<int64_t>(batch.size()) < batch_size) {
    const std::vector<int64_t>& order = order_for(position_.epoch);
    batch.push_back(order[static_cast<size_t>(position_.index)]);
    if (++position_.index == n_) {
      ++position_.epoch;
      position_.index = 0;
    }
  }
  return batch;
}

void EpochSampler::set_position(const SamplerPosition& position) {
  if (position.epoch < 0 || position.index < 0 || position.index > n_) {
    throw Error("data", "sampler position (epoch " + std::to_string(position.epoch) + ", index " +
                            std::to_string(position.index) + ") is invalid for " +
                            std::to_string(n_) + " records");
  }
  position_ = position;
  if (position_.index == n_) {
    ++position_.epoch;
    position_.index = 0;
  }
}

}  // namespace tailor::data
