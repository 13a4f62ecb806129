// VPL's context encoder: the frozen initial backbone's embedding (last real token's final hidden
// state) of every response a survey answer uses, computed once per run and cached in HDF5 so a
// rerun with the same model, data and survey skips the work.
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "models/core/causal_lm.h"

namespace tailor {

// The embeddings of sequences[needed[i]] (row i): each one's final hidden state at its last token
// (last_token_features), with `model` in eval mode and without gradients, in chunks of 64
// right-padded sequences; [needed.size(), n_embd] float32. VPL's context encoder (also used by
// the DPO stage's VPL judges, judges/reward_judge.h).
at::Tensor embed_sequences(CausalLMImpl& model, const std::vector<std::vector<int32_t>>& sequences,
                           const std::vector<int64_t>& needed);

// [sequences.size(), n_embd] float32: rows `needed` hold the embeddings (embed_sequences), the
// others zeros.
// Reads `cache_file` when it exists with the same key and shape (the model is not run; the
// file's values are returned as stored); otherwise computes them with `model` in eval mode
// without gradients and writes the cache (atomically). `cache_hit`, when given, says which.
at::Tensor context_embeddings(CausalLMImpl& model,
                              const std::vector<std::vector<int32_t>>& sequences,
                              const std::vector<int64_t>& needed,
                              const std::filesystem::path& cache_file, const std::string& key,
                              std::ostream& log, bool* cache_hit = nullptr);

}  // namespace tailor
