#include "train/features/context_embeddings.h"

#include <algorithm>
#include <cstdio>
#include <ostream>
#include <sstream>

#include <torch/torch.h>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/fnv1a.h"
#include "data/store/h5_file.h"
#include "models/heads/vpl.h"

namespace tailor {
namespace fs = std::filesystem;

at::Tensor embed_sequences(CausalLMImpl& model, const std::vector<std::vector<int32_t>>& sequences,
                           const std::vector<int64_t>& needed) {
  at::Tensor out =
      at::empty({static_cast<int64_t>(needed.size()), model.hidden_size()}, at::kFloat);
  const bool was_training = model.is_training();
  model.eval();
  {
    torch::NoGradGuard no_grad;
    constexpr size_t kChunk = 64;
    for (size_t i = 0; i < needed.size(); i += kChunk) {
      const size_t n = std::min(kChunk, needed.size() - i);
      int64_t T = 1;
      for (size_t j = 0; j < n; ++j)
        T = std::max<int64_t>(T, static_cast<int64_t>(sequences[needed[i + j]].size()));
      at::Tensor ids = at::zeros({static_cast<int64_t>(n), T}, at::kLong);
      at::Tensor mask = at::zeros_like(ids);
      auto ids_a = ids.accessor<int64_t, 2>();
      auto mask_a = mask.accessor<int64_t, 2>();
      for (size_t j = 0; j < n; ++j) {
        const auto& s = sequences[needed[i + j]];
        for (size_t t = 0; t < s.size(); ++t) {
          ids_a[j][t] = s[t];
          mask_a[j][t] = 1;
        }
      }
      const at::Tensor e = last_token_features(model.hidden_states(ids, mask), mask);
      out.slice(0, static_cast<int64_t>(i), static_cast<int64_t>(i + n)).copy_(e.to(at::kFloat));
    }
  }
  if (was_training) model.train();
  return out;
}

at::Tensor context_embeddings(CausalLMImpl& model,
                              const std::vector<std::vector<int32_t>>& sequences,
                              const std::vector<int64_t>& needed, const fs::path& cache_file,
                              const std::string& key, std::ostream& log, bool* cache_hit) {
  const int64_t R = static_cast<int64_t>(sequences.size()), E = model.hidden_size();
  if (cache_hit) *cache_hit = false;
  if (fs::exists(cache_file)) {
    const auto file = h5::File::open_read_only(cache_file);
    if (file.has_attribute("key") && file.string_attribute("key") == key &&
        file.int_attribute("rows") == R && file.int_attribute("dim") == E) {
      auto values = file.read_float32("embeddings");
      log << "[features] " << needed.size() << " embeddings read from " << cache_file.string()
          << "\n";
      if (cache_hit) *cache_hit = true;
      return at::tensor(values, at::kFloat).view({R, E});
    }
  }
  at::Tensor out = at::zeros({R, E}, at::kFloat);
  if (!needed.empty())
    out.index_copy_(0, at::tensor(needed, at::kLong), embed_sequences(model, sequences, needed));
  fs::create_directories(cache_file.parent_path());
  write_atomic_with(cache_file, [&](const fs::path& tmp) {
    auto file = h5::File::create(tmp);
    file.set_attribute("key", key);
    file.set_attribute("rows", R);
    file.set_attribute("dim", E);
    const at::Tensor flat = out.contiguous().view(-1);
    file.write_float32("embeddings", std::vector<float>(flat.data_ptr<float>(),
                                                        flat.data_ptr<float>() + flat.numel()));
    file.close();
  });
  log << "[features] " << needed.size() << " responses embedded by the frozen "
      << "encoder, cached in " << cache_file.string() << "\n";
  return out;
}

}  // namespace tailor
