// Keys and values of the positions a causal LM has already seen, one pair per layer, so that
// decoding a new token attends to the past without recomputing it.
//
// Dimensions: B batch, K key/value heads, P cached positions, T new positions, D head size.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

namespace tailor {

class KvCache {
 public:
  explicit KvCache(int64_t num_layers);

  // P: positions cached so far, as layer 0 holds them. A model reads it before its first layer
  // appends, so within one forward call every layer sees the same P.
  int64_t length() const;
  int64_t num_layers() const { return static_cast<int64_t>(keys_.size()); }

  // Appends keys/values [B, K, T, D] of `layer` and returns everything cached for it,
  // [B, K, P + T, D] each. Stored without autograd history (the cache is for inference).
  std::pair<at::Tensor, at::Tensor> append(int64_t layer, const at::Tensor& keys,
                                           const at::Tensor& values);

  // Keeps only the rows `index` [B'] (int64) of every layer, e.g. to repeat each prompt's cache
  // for several return sequences.
  void select_rows(const at::Tensor& index);

 private:
  std::vector<at::Tensor> keys_;
  std::vector<at::Tensor> values_;
};

}  // namespace tailor
