#include "stages/dpo/dpo_pairs.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <torch/torch.h>

#include "common/device.h"
#include "common/error.h"
#include "common/fnv1a.h"
#include "common/seeded_random.h"
#include "models/tokenizer/prompt_format.h"
#include "train/loop/metrics.h"
#include "train/loop/ranks.h"
#include "train/per_user/dpo_step.h"

namespace tailor {
namespace fs = std::filesystem;

uint64_t user_seed(uint64_t seed, const std::string& user, uint64_t purpose) {
  return splitmix64(splitmix64(seed ^ purpose) ^ std::stoull(fnv1a64_hex(user), nullptr, 16));
}

DpoPairs::DpoPairs(const DpoContext& ctx, data::CollateOptions collate)
    : ctx_(ctx), collate_(collate) {}

void DpoPairs::read(const fs::path& file) {
  pairs_ =
      data::UserPairs::from_jsonl(file, [this](const std::string& field, const std::string& text) {
        return encode_sft_field(ctx_.tokenizer, ctx_.recipe.data.prompt_template, field, text);
      });
}

void DpoPairs::split(const std::vector<std::string>& users,
                     const std::vector<std::string>& eval_prompts) {
  const DpoRecipe& r = ctx_.recipe;
  const bool generated = r.data.source != PairSource::kPairs;  // generated or pool: by prompt
  users_ = users;
  train_of_.assign(users.size(), {});
  eval_of_.assign(users.size(), {});
  const std::set<std::string> held_out(eval_prompts.begin(), eval_prompts.end());
  for (size_t u = 0; u < users.size(); ++u) {
    const auto mine = pairs_->indices_of(users[u]);
    if (generated) {
      for (int64_t i : mine)
        (held_out.count(pairs_->pair(i).prompt_text) ? eval_of_ : train_of_)[u].push_back(i);
    } else {
      // Held-out splits stay fixed across training seeds (generate.seed picks them).
      data::EpochSampler split(
          static_cast<int64_t>(mine.size()),
          user_seed(static_cast<uint64_t>(r.generate.seed) ^ 0x5eedULL, users[u], kSplitStream));
      const auto order = split.permutation(0);
      const int64_t n = static_cast<int64_t>(mine.size());
      const int64_t n_eval =
          r.data.eval_fraction <= 0 || n < 2
              ? 0
              : std::clamp<int64_t>(std::llround(r.data.eval_fraction * static_cast<double>(n)), 1,
                                    n - 1);
      for (size_t k = 0; k < order.size(); ++k)
        (static_cast<int64_t>(k) < n_eval ? eval_of_ : train_of_)[u].push_back(
            mine[static_cast<size_t>(order[k])]);
      std::sort(train_of_[u].begin(), train_of_[u].end());
      std::sort(eval_of_[u].begin(), eval_of_[u].end());
    }
    if (train_of_[u].empty())
      throw Error("dpo", "user '" + users[u] + "' has no training pairs" +
                             (generated ? " (its oracles preferred none of the base's answers; "
                                          "more prompts or generate.completions may help)"
                                        : " in " + r.data.path.string()));
  }
  if (generated) {
    eval_prompts_ = eval_prompts;
    return;
  }
  // The win rates sample the held-out pairs' prompts, each once.
  eval_prompts_.clear();
  std::set<std::string> seen;
  for (const auto& list : eval_of_)
    for (int64_t i : list)
      if (seen.insert(pairs_->pair(i).prompt_text).second)
        eval_prompts_.push_back(pairs_->pair(i).prompt_text);
}

TextPair DpoPairs::text_pair(int64_t i) const {
  const data::UserPair& p = pairs_->pair(i);
  return TextPair{p.user,          p.prompt_text,      p.chosen_text,
                  p.rejected_text, p.chosen_truncated, p.rejected_truncated};
}

data::PairBatch DpoPairs::collate(const std::vector<int64_t>& pairs) const {
  return pairs_->collate(pairs, collate_);
}

void DpoPairs::reset_samplers(int64_t round) {
  samplers_.clear();
  for (size_t u = 0; u < users_.size(); ++u)
    samplers_.emplace_back(static_cast<int64_t>(train_of_[u].size()),
                           user_seed(static_cast<uint64_t>(ctx_.recipe.seed), users_[u],
                                     kSamplerStream + 16 * static_cast<uint64_t>(round)));
}

std::vector<int64_t> DpoPairs::next_step_pairs() {
  const int64_t P = ctx_.recipe.train.pairs_per_user, W = ctx_.comm.world_size(), share = P / W;
  std::vector<std::vector<int64_t>> of_user(users_.size());
  for (size_t u = 0; u < users_.size(); ++u) {
    const auto global = samplers_[u].next_batch(P);
    for (int64_t k = share * ctx_.comm.rank(); k < share * (ctx_.comm.rank() + 1); ++k)
      of_user[u].push_back(train_of_[u][static_cast<size_t>(global[static_cast<size_t>(k)])]);
  }
  std::vector<int64_t> mine;
  for (int64_t k = 0; k < share; ++k)
    for (const auto& list : of_user)
      mine.push_back(list[static_cast<size_t>(k)]);
  return mine;
}

nlohmann::json DpoPairs::sampler_positions() const {
  nlohmann::json positions = nlohmann::json::array();
  for (const auto& sampler : samplers_)
    positions.push_back({sampler.position().epoch, sampler.position().index});
  return positions;
}

void DpoPairs::set_sampler_positions(const nlohmann::json& positions) {
  for (size_t u = 0; u < samplers_.size(); ++u)
    samplers_[u].set_position({positions[u][0].get<int64_t>(), positions[u][1].get<int64_t>()});
}

void DpoPairs::precompute_reference(AdapterBank& bank) {
  const double t0 = steady_clock_seconds();
  using Key = std::array<std::vector<int32_t>, 3>;  // prompt, the smaller response, the larger
  std::map<Key, int64_t> slot_of;
  std::vector<int64_t> first;  // a pair index per distinct pair, in order of first appearance
  std::vector<std::pair<int64_t, bool>> slot_of_pair(static_cast<size_t>(pairs_->size()),
                                                     {-1, false});  // slot, swapped
  for (const auto& list : train_of_)
    for (int64_t i : list) {
      const data::UserPair& pair = pairs_->pair(i);
      const bool swapped = pair.rejected < pair.chosen;
      Key key{pair.prompt, swapped ? pair.rejected : pair.chosen,
              swapped ? pair.chosen : pair.rejected};
      const auto [it, fresh] = slot_of.emplace(std::move(key), static_cast<int64_t>(first.size()));
      if (fresh) first.push_back(i);
      // The slot holds the log-probs in the order of its first pair.
      const bool first_swapped = pairs_->pair(first[static_cast<size_t>(it->second)]).rejected <
                                 pairs_->pair(first[static_cast<size_t>(it->second)]).chosen;
      slot_of_pair[static_cast<size_t>(i)] = {it->second, swapped != first_swapped};
    }
  const int64_t n = static_cast<int64_t>(first.size());
  const DpoRecipe& r = ctx_.recipe;
  const int64_t batch = r.train.micro_batch_size > 0 ? r.train.micro_batch_size : 16;
  // [slot] {chosen, rejected} of its pair. float64 holds float32 log-probs exactly, and the sum
  // over ranks adds each slot's one value to zeros.
  at::Tensor values = at::zeros({n, 2}, at::kDouble);
  reference_dtype_ =
      ctx_.model.parameters().front().scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  {
    AutocastScope autocast(r.train.precision == Precision::kBf16Autocast, at::kCPU);
    int64_t b = 0;
    for (int64_t start = 0; start < n; start += batch, ++b) {
      if (b % ctx_.comm.world_size() != ctx_.comm.rank()) continue;
      const int64_t m = std::min(batch, n - start);
      const std::vector<int64_t> chunk(first.begin() + start, first.begin() + start + m);
      const at::Tensor ref = reference_log_probs(ctx_.model, bank, collate(chunk), at::kCPU);
      const at::Tensor ref64 = ref.to(at::kDouble);
      values.narrow(0, start, m).select(1, 0).copy_(ref64.narrow(0, 0, m));
      values.narrow(0, start, m).select(1, 1).copy_(ref64.narrow(0, m, m));
    }
  }
  values = sum_over_ranks(ctx_.comm, values);  // each slot computed by one rank: exact
  const double* v = values.data_ptr<double>();
  reference_.assign(static_cast<size_t>(pairs_->size()), {NAN, NAN});
  for (size_t i = 0; i < slot_of_pair.size(); ++i) {
    const auto [slot, swap] = slot_of_pair[i];
    if (slot < 0) continue;
    const double c = v[2 * slot], rj = v[2 * slot + 1];
    reference_[i] = swap ? std::array<double, 2>{rj, c} : std::array<double, 2>{c, rj};
  }
  int64_t train_pairs = 0;
  for (const auto& list : train_of_)
    train_pairs += static_cast<int64_t>(list.size());
  ctx_.log << "[dpo] reference log-probs of " << train_pairs << " training pairs (" << n
           << " distinct) computed once in " << seconds_text(steady_clock_seconds() - t0) << " s\n";
}

at::Tensor DpoPairs::reference_of(const std::vector<int64_t>& pairs) const {
  const int64_t B = static_cast<int64_t>(pairs.size());
  at::Tensor out = at::empty({2 * B}, at::kDouble);
  double* o = out.data_ptr<double>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& value = reference_[static_cast<size_t>(pairs[static_cast<size_t>(b)])];
    if (std::isnan(value[0]) || std::isnan(value[1]))
      throw Error("dpo", "internal: no precomputed reference for pair " +
                             std::to_string(pairs[static_cast<size_t>(b)]));
    o[b] = value[0];
    o[B + b] = value[1];
  }
  return out.to(reference_dtype_);
}

}  // namespace tailor
