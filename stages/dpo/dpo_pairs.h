// The preference pairs a DPO run trains and evaluates on: the pairs of one JSONL file, tokenized
// as training encodes them; each user's training and held-out pairs; the held-out prompts of the
// win rates; each user's pair order (one seeded sampler per user); and, with
// dpo.precompute_reference, every training pair's reference log-probs.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/preferences/user_pairs.h"
#include "data/sampling/epoch_sampler.h"
#include "judges/preference_sources.h"
#include "models/core/adapter_bank.h"
#include "stages/dpo/dpo_context.h"

namespace tailor {

// A user's random streams (adapter init, pair order, held-out split) come from a seed and the
// user's name, so a user trains the same whichever other users share the run: one run of N
// users equals N runs of one.
uint64_t user_seed(uint64_t seed, const std::string& user, uint64_t purpose);
constexpr uint64_t kInitStream = 1, kSamplerStream = 2, kSplitStream = 3;

class DpoPairs {
 public:
  DpoPairs(const DpoContext& ctx, data::CollateOptions collate);

  // Reads and tokenizes the pairs of `file` (replacing any read before).
  void read(const std::filesystem::path& file);
  // Each of `users`' pairs (adapter order), training or held out: with data.source generated, the
  // pairs of `eval_prompts` are held out; with a pairs file, a seeded share of each user's pairs
  // (data.eval_fraction), whose prompts become the held-out prompts. Every user must keep a
  // training pair (Error naming the user otherwise).
  void split(const std::vector<std::string>& users, const std::vector<std::string>& eval_prompts);

  const data::UserPairs& pairs() const { return *pairs_; }
  const std::vector<int64_t>& train_of(size_t user) const { return train_of_.at(user); }
  const std::vector<int64_t>& eval_of(size_t user) const { return eval_of_.at(user); }
  const std::vector<std::string>& eval_prompts() const { return eval_prompts_; }
  TextPair text_pair(int64_t i) const;
  data::PairBatch collate(const std::vector<int64_t>& pairs) const;

  // Each user's pair order over its training pairs of round `round` (round 0's stream is the one
  // a run without rounds uses).
  void reset_samplers(int64_t round);
  // This rank's pairs of the next step: every user's next train.pairs_per_user pairs (the same
  // draw on every rank), this rank's share of each, interleaved by user so every pass mixes the
  // users.
  std::vector<int64_t> next_step_pairs();
  nlohmann::json sampler_positions() const;
  void set_sampler_positions(const nlohmann::json& positions);

  // The reference is the frozen base, so a pair's reference log-probs never change: computed
  // once instead of once per step. Pairs with the same prompt and the same two responses (users
  // with opposite tastes often pick the same two answers, in opposite order) are computed once.
  // The distinct pairs go in batches of train.micro_batch_size (16 when 0) in a fixed order,
  // dealt to the ranks in turn and summed over them, so every rank gets the numbers one process
  // computes.
  void precompute_reference(AdapterBank& bank);
  bool has_reference() const { return !reference_.empty(); }
  // The precomputed reference of a batch's pairs as reference_log_probs orders it: [2B], every
  // pair's chosen first, then every pair's rejected; in the reference's dtype.
  at::Tensor reference_of(const std::vector<int64_t>& pairs) const;

 private:
  const DpoContext& ctx_;
  data::CollateOptions collate_;
  std::optional<data::UserPairs> pairs_;
  std::vector<std::string> users_;
  std::vector<std::vector<int64_t>> train_of_, eval_of_;  // per user: indices into pairs_
  std::vector<std::string> eval_prompts_;
  std::vector<data::EpochSampler> samplers_;  // per user, over train_of_[u]
  // {chosen, rejected} reference log-probs of every training pair (indexed like pairs_), in
  // float64 (exact for float32 values); empty when not precomputed.
  std::vector<std::array<double, 2>> reference_;
  at::ScalarType reference_dtype_ = at::kFloat;
};

}  // namespace tailor
