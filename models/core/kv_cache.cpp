#include "models/core/kv_cache.h"

#include <string>

#include "common/error.h"
#include "common/shape_string.h"

namespace tailor {

KvCache::KvCache(int64_t num_layers) : keys_(num_layers), values_(num_layers) {
  if (num_layers <= 0) throw Error("kv_cache", "num_layers must be positive");
}

int64_t KvCache::length() const {
  return keys_.front().defined() ? keys_.front().size(2) : 0;
}

std::pair<at::Tensor, at::Tensor> KvCache::append(int64_t layer, const at::Tensor& keys,
                                                  const at::Tensor& values) {
  if (layer < 0 || layer >= num_layers()) {
    throw Error("kv_cache", "layer " + std::to_string(layer) + " outside [0, " +
                                std::to_string(num_layers()) + ")");
  }
  at::Tensor& k = keys_[layer];
  at::Tensor& v = values_[layer];
  if (k.defined() &&
      (k.size(0) != keys.size(0) || k.size(1) != keys.size(1) || k.size(3) != keys.size(3))) {
    throw Error("kv_cache", "layer " + std::to_string(layer) + ": new keys " +
                                shape_string(keys.sizes()) + " do not extend the cached " +
                                shape_string(k.sizes()));
  }
  // Concatenation reallocates each step (O(S) copy per token); at the sizes tailor decodes
  // (S <= a few thousand) this costs far less than the attention itself.
  k = k.defined() ? at::cat({k, keys.detach()}, 2) : keys.detach();
  v = v.defined() ? at::cat({v, values.detach()}, 2) : values.detach();
  return {k, v};
}

void KvCache::select_rows(const at::Tensor& index) {
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (!keys_[i].defined()) continue;
    keys_[i] = keys_[i].index_select(0, index.to(keys_[i].device()));
    values_[i] = values_[i].index_select(0, index.to(values_[i].device()));
  }
}

}  // namespace tailor
