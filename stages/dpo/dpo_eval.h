// The DPO stage's evaluation. Held-out margins: every held-out pair under its user's adapter and
// under the base (implicit-reward accuracy and margins, TRL's definitions). Win rates, as in the
// seed: on held-out prompts, samples from each user's adapter against the base's, judged by the
// recipe's eval_users (or, without them, by the user's own training judge, and the table says
// so); with eval.cross_user, every adapter judged by every judge (the cross-user matrix, row:
// adapter, column: judge). An empty answer, or one cut at eval.max_new_tokens, never wins.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/core/adapter_bank.h"
#include "stages/dpo/dpo_context.h"
#include "stages/dpo/dpo_pairs.h"
#include "train/loop/metrics.h"

namespace tailor {

// The held-out pairs under each user's adapter and under the base: implicit-reward accuracy and
// margins, and the policy's log-prob margin log pi(chosen) - log pi(rejected) of every pair. The
// ranks split the pairs. Per user {pairs, rewards/accuracies, rewards/margins, logps/margin};
// logged at `step` (metrics may be null); `final` also writes output_dir/eval_pairs.jsonl, which
// `tailor score --adapter export/users/<user>` reproduces.
nlohmann::json evaluate_margins(const DpoContext& ctx, AdapterBank& bank,
                                const std::vector<std::string>& users, const DpoPairs& pairs,
                                MetricsWriter* metrics, int64_t step, bool final);

// The seed's win rates: for each held-out prompt (eval.prompts of them), eval.completions samples
// from each user's adapter and from the base with the same seeds; the adapter's judge
// (eval_judge_of) compares sample r of the adapter with sample r of the base. Invalid answers
// (judges/win_rate.h) lose or are drawn again (eval.invalid). The ranks split the prompts. Prints
// the table, writes output_dir/eval_samples.jsonl, logs each judged adapter's rate; returns
// {"win_rate": {adapter: {wins, ties, losses, rate, judge, judge_description,
// judge_picked_training_pairs, invalid_answers}}, "cross_user": {adapters, judges, win_rate,
// judge_picked_training_pairs}, "invalid_answers": {sampler: counts}, "judges": {training, eval,
// eval_source}} (empty without judges, samples or held-out prompts).
nlohmann::json evaluate_win_rates(const DpoContext& ctx, AdapterBank& bank,
                                  const std::vector<std::string>& users,
                                  const std::vector<std::string>& eval_prompts,
                                  MetricsWriter* metrics, int64_t step);

}  // namespace tailor
