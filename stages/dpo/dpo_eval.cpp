#include "stages/dpo/dpo_eval.h"

#include <algorithm>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

#include <torch/torch.h>

#include "common/atomic_file.h"
#include "judges/preference_sources.h"
#include "judges/win_rate.h"
#include "stages/dpo/pair_sources.h"
#include "train/per_user/dpo_step.h"

namespace tailor {

// The held-out pairs under each user's adapter and under the base: implicit-reward accuracy and
// margins, and the policy's log-prob margin log pi(chosen) - log pi(rejected) of every pair
// (written to eval_pairs.jsonl at the end; `tailor score --adapter export/users/<user>` gives the
// same numbers). The ranks split the pairs.
nlohmann::json evaluate_margins(const DpoContext& ctx, AdapterBank& bank,
                                const std::vector<std::string>& users, const DpoPairs& pairs,
                                MetricsWriter* metrics, int64_t step, bool final) {
  std::vector<int64_t> all;
  for (size_t u = 0; u < users.size(); ++u)
    all.insert(all.end(), pairs.eval_of(u).begin(), pairs.eval_of(u).end());
  if (all.empty()) return nlohmann::json::object();
  torch::NoGradGuard no_grad;
  ctx.model.eval();
  nlohmann::json mine = nlohmann::json::array();  // [index, pc, pr, ref_c, ref_r]
  const size_t batch_pairs = ctx.recipe.train.micro_batch_size > 0
                                 ? static_cast<size_t>(ctx.recipe.train.micro_batch_size)
                                 : 8;
  std::vector<int64_t> share;
  for (size_t i = static_cast<size_t>(ctx.comm.rank()); i < all.size();
       i += static_cast<size_t>(ctx.comm.world_size()))
    share.push_back(all[i]);
  for (size_t start = 0; start < share.size(); start += batch_pairs) {
    const std::vector<int64_t> chunk(share.begin() + start,
                                     share.begin() + std::min(share.size(), start + batch_pairs));
    const data::PairBatch batch = pairs.collate(chunk);
    const int64_t B = batch.pairs();
    const at::Tensor ref = reference_log_probs(ctx.model, bank, batch, at::kCPU);
    const at::Tensor policy = policy_log_probs(ctx.model, bank, batch, at::kCPU);
    const at::Tensor p = policy.to(at::kDouble), q = ref.to(at::kDouble);
    for (int64_t b = 0; b < B; ++b)
      mine.push_back({chunk[static_cast<size_t>(b)], p[b].item<double>(), p[B + b].item<double>(),
                      q[b].item<double>(), q[B + b].item<double>()});
  }
  ctx.model.train();
  std::map<int64_t, std::array<double, 4>> result;
  for (const auto& part : ctx.comm.all_gather_strings(mine.dump()))
    for (const auto& e : nlohmann::json::parse(part))
      result[e[0].get<int64_t>()] = {e[1].get<double>(), e[2].get<double>(), e[3].get<double>(),
                                     e[4].get<double>()};

  const double beta = ctx.recipe.dpo.beta;
  nlohmann::json record, per_user;
  std::string lines;
  double acc_sum = 0, margin_sum = 0, logp_margin_sum = 0;
  int64_t userswith_pairs = 0;
  for (size_t u = 0; u < users.size(); ++u) {
    if (pairs.eval_of(u).empty()) continue;
    double acc = 0, margin = 0, logp_margin = 0;
    for (int64_t i : pairs.eval_of(u)) {
      const auto& [pc, pr, qc, qr] = result.at(i);
      const double rc = beta * (pc - qc), rr = beta * (pr - qr);
      acc += rc > rr ? 1.0 : 0.0;
      margin += rc - rr;
      logp_margin += pc - pr;
      if (final) {
        const auto& pair = pairs.pairs().pair(i);
        nlohmann::json line = {{"user", users[u]},           {"prompt", pair.prompt_text},
                               {"chosen", pair.chosen_text}, {"rejected", pair.rejected_text},
                               {"logp_chosen", pc},          {"logp_rejected", pr},
                               {"margin", pc - pr},          {"ref_logp_chosen", qc},
                               {"ref_logp_rejected", qr}};
        if (pair.chosen_truncated) line["chosen_truncated"] = true;
        if (pair.rejected_truncated) line["rejected_truncated"] = true;
        lines += line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
      }
    }
    const double n = static_cast<double>(pairs.eval_of(u).size());
    per_user[users[u]] = {{"pairs", pairs.eval_of(u).size()},
                          {"rewards/accuracies", acc / n},
                          {"rewards/margins", margin / n},
                          {"logps/margin", logp_margin / n}};
    record["eval/users/" + users[u] + "/rewards/accuracies"] = acc / n;
    record["eval/users/" + users[u] + "/rewards/margins"] = margin / n;
    acc_sum += acc / n;
    margin_sum += margin / n;
    logp_margin_sum += logp_margin / n;
    ++userswith_pairs;
  }
  record["eval/rewards/accuracies"] = acc_sum / userswith_pairs;
  record["eval/rewards/margins"] = margin_sum / userswith_pairs;
  record["eval/logps/margin"] = logp_margin_sum / userswith_pairs;
  if (metrics) metrics->log(step, record);
  ctx.log << "[dpo] step " << step << " held-out reward accuracy "
          << record["eval/rewards/accuracies"].get<double>() << ", margin "
          << record["eval/rewards/margins"].get<double>() << " (mean over users)\n";
  if (final && ctx.rank0()) write_file_atomic(ctx.recipe.output_dir / "eval_pairs.jsonl", lines);
  return per_user;
}

// The seed's win rates: for each held-out prompt, eval.completions samples from each user's
// adapter and from the base with the same seeds; the user's judge compares sample r of the
// adapter with sample r of the base. The ranks split the prompts.
nlohmann::json evaluate_win_rates(const DpoContext& ctx, AdapterBank& bank,
                                  const std::vector<std::string>& users,
                                  const std::vector<std::string>& eval_prompts,
                                  MetricsWriter* metrics, int64_t step) {
  std::vector<std::string> judged;  // users with a judge (in `users` or `reward_users`)
  for (const auto& user : users)
    if (has_judge(ctx.recipe, user)) judged.push_back(user);
  if (ctx.recipe.eval.completions == 0 || judged.empty() || eval_prompts.empty())
    return nlohmann::json::object();
  std::vector<std::string> prompts = eval_prompts;
  if (ctx.recipe.eval.prompts > 0 && static_cast<int64_t>(prompts.size()) > ctx.recipe.eval.prompts)
    prompts.resize(static_cast<size_t>(ctx.recipe.eval.prompts));
  const int64_t P = static_cast<int64_t>(prompts.size()), W = ctx.comm.world_size();
  const int64_t begin = P * ctx.comm.rank() / W, end = P * (ctx.comm.rank() + 1) / W;
  const std::vector<std::string> share(prompts.begin() + begin, prompts.begin() + end);
  GenerationConfig config;
  config.max_new_tokens = ctx.recipe.eval.max_new_tokens;
  config.temperature = ctx.recipe.eval.temperature;
  config.top_k = ctx.recipe.eval.top_k;
  config.top_p = ctx.recipe.eval.top_p;
  config.seed = static_cast<uint64_t>(ctx.recipe.eval.seed);
  const int64_t K = ctx.recipe.eval.completions;
  ctx.log << "[dpo] win rates: " << K << " samples for each of " << P
          << " held-out prompts from the base and from " << users.size() << " adapters\n";
  const double t0 = steady_clock_seconds();
  nlohmann::json mine;  // {"": base samples, user: samples}
  for (const std::string& who : [&] {
         std::vector<std::string> all = {""};  // the base first, then each user's adapter
         all.insert(all.end(), users.begin(), users.end());
         return all;
       }()) {
    const AdapterRoute route(bank, who);
    mine[who] = sample_completions(ctx.model, ctx.tokenizer, ctx.recipe.data.prompt_template, share,
                                   config, K, begin);
  }
  std::map<std::string, std::vector<std::string>> samples;  // "" = the base
  for (const auto& part : ctx.comm.all_gather_strings(
           mine.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))) {
    const nlohmann::json parsed = nlohmann::json::parse(part);  // items() refers into it
    for (const auto& [who, list] : parsed.items())
      for (const auto& text : list)
        samples[who].push_back(text.get<std::string>());
  }
  ctx.log << "[dpo] sampled in " << seconds_text(steady_clock_seconds() - t0) << " s\n";

  std::vector<std::vector<Comparison>> comparisons;  // per adapter (users order)
  for (const auto& user : users) {
    std::vector<Comparison> list;
    for (size_t i = 0; i < prompts.size() * static_cast<size_t>(K); ++i)
      list.push_back({prompts[i / static_cast<size_t>(K)], samples[user][i], samples[""][i]});
    comparisons.push_back(std::move(list));
  }
  // Each judge takes all its comparisons in one call: with eval.cross_user every adapter's
  // (column j of the matrix), else only its own user's.
  std::map<std::string, WinRate> own;  // judge -> its adapter's win rate
  std::vector<std::vector<double>> matrix(users.size(),
                                          std::vector<double>(judged.size()));  // [adapter][judge]
  for_each_judge(ctx, judged, [&](const std::string& user, judges::Judge& judge) {
    const size_t u = static_cast<size_t>(bank.index_of(user));
    if (ctx.recipe.eval.cross_user) {
      const size_t j =
          static_cast<size_t>(std::find(judged.begin(), judged.end(), user) - judged.begin());
      const std::vector<WinRate> column = win_rates(comparisons, judge);
      for (size_t i = 0; i < users.size(); ++i)
        matrix[i][j] = column[i].rate();
      own[user] = column[u];
    } else {
      own[user] = win_rates({comparisons[u]}, judge).front();
    }
  });
  nlohmann::json out;
  std::ostringstream table;
  table << std::fixed << std::setprecision(3)
        << "[dpo] win rate of each user's adapter against the base, judged by that user (" << P
        << " prompts x " << K << " samples; ties count half):\n";
  for (size_t j = 0; j < judged.size(); ++j) {
    const WinRate& w = own.at(judged[j]);
    out["win_rate"][judged[j]] = {
        {"wins", w.wins}, {"ties", w.ties}, {"losses", w.losses}, {"rate", w.rate()}};
    table << "  " << std::setw(16) << std::left << judged[j] << std::right << " " << w.rate()
          << "  (" << w.wins << " wins, " << w.ties << " ties, " << w.losses << " losses)\n";
  }
  if (ctx.recipe.eval.cross_user) {
    out["cross_user"] = {{"adapters", users}, {"judges", judged}, {"win_rate", matrix}};
    table << "[dpo] cross-user win rates against the base (row: adapter, column: judge):\n"
          << std::setw(18) << "";
    for (const auto& j : judged)
      table << std::setw(10) << j.substr(0, 9);
    table << "\n";
    for (size_t i = 0; i < users.size(); ++i) {
      table << "  " << std::setw(16) << std::left << users[i] << std::right;
      for (double v : matrix[i])
        table << std::setw(10) << v;
      table << "\n";
    }
  }
  if (ctx.rank0()) {
    std::cout << table.str() << std::flush;
    std::string lines;
    for (size_t i = 0; i < prompts.size() * static_cast<size_t>(K); ++i) {
      nlohmann::json line = {{"prompt", prompts[i / static_cast<size_t>(K)]},
                             {"sample", i % static_cast<size_t>(K)},
                             {"base", samples[""][i]}};
      for (const auto& user : users)
        line["users"][user] = samples[user][i];
      lines += line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
    write_file_atomic(ctx.recipe.output_dir / "eval_samples.jsonl", lines);
  }
  if (metrics) {
    nlohmann::json record;
    for (const auto& [user, w] : out["win_rate"].items())
      record["eval/users/" + user + "/win_rate"] = w["rate"];
    metrics->log(step, record);
  }
  return out;
}

}  // namespace tailor
