#include "stages/dpo/dpo_eval.h"

#include <algorithm>
#include <cmath>
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
    // The implicit rewards as the loss defines them (ipo: per response token).
    const at::Tensor n = response_token_counts(batch);
    const DpoLosses d = dpo_losses(
        p.narrow(0, 0, B), p.narrow(0, B, B), q.narrow(0, 0, B), q.narrow(0, B, B),
        DpoLossConfig{ctx.recipe.dpo.type, ctx.recipe.dpo.beta, ctx.recipe.dpo.label_smoothing},
        n.narrow(0, 0, B), n.narrow(0, B, B));
    const at::Tensor rc = d.chosen_rewards.to(at::kDouble), rr = d.rejected_rewards.to(at::kDouble);
    for (int64_t b = 0; b < B; ++b)
      mine.push_back({chunk[static_cast<size_t>(b)], p[b].item<double>(), p[B + b].item<double>(),
                      q[b].item<double>(), q[B + b].item<double>(), rc[b].item<double>(),
                      rr[b].item<double>()});
  }
  ctx.model.train();
  std::map<int64_t, std::array<double, 6>> result;
  for (const auto& part : ctx.comm.all_gather_strings(mine.dump()))
    for (const auto& e : nlohmann::json::parse(part))
      result[e[0].get<int64_t>()] = {e[1].get<double>(), e[2].get<double>(), e[3].get<double>(),
                                     e[4].get<double>(), e[5].get<double>(), e[6].get<double>()};

  nlohmann::json record, per_user;
  std::string lines;
  double acc_sum = 0, margin_sum = 0, logp_margin_sum = 0;
  int64_t userswith_pairs = 0;
  for (size_t u = 0; u < users.size(); ++u) {
    if (pairs.eval_of(u).empty()) continue;
    double acc = 0, margin = 0, logp_margin = 0;
    for (int64_t i : pairs.eval_of(u)) {
      const auto& [pc, pr, qc, qr, rc, rr] = result.at(i);
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

namespace {

// One sampler's answers (the base's or an adapter's) to this rank's prompts, with each answer's
// validity; eval.invalid resample draws the invalid ones again with new seeds.
struct EvalAnswers {
  std::vector<std::string> texts;
  std::vector<bool> truncated, invalid;
  int64_t resampled = 0;  // answers replaced by a new draw
};

EvalAnswers sample_eval_answers(const DpoContext& ctx, const std::vector<std::string>& share,
                                GenerationConfig config, int64_t K, int64_t begin,
                                const std::string& system) {
  EvalAnswers out;
  std::vector<bool> cut;
  out.texts = sample_completions(ctx.model, ctx.tokenizer, ctx.recipe.data.prompt_template, share,
                                 config, K, begin, /*batch_prompts=*/8, &cut, system);
  out.truncated = cut;
  for (size_t i = 0; i < out.texts.size(); ++i)
    out.invalid.push_back(is_invalid_answer(out.texts[i], out.truncated[i]));
  if (ctx.recipe.eval.invalid != InvalidAnswers::kResample) return out;
  const uint64_t seed = config.seed;
  for (int64_t attempt = 1; attempt <= ctx.recipe.eval.resample_tries; ++attempt) {
    // The prompts with an invalid answer, sampled again in full from a new stream (sample r of
    // prompt i keeps its slot); only the invalid answers are replaced.
    std::vector<size_t> redo;
    for (size_t i = 0; i < share.size(); ++i)
      for (int64_t r = 0; r < K; ++r)
        if (out.invalid[i * static_cast<size_t>(K) + static_cast<size_t>(r)]) {
          redo.push_back(i);
          break;
        }
    if (redo.empty()) break;
    config.seed = seed + static_cast<uint64_t>(attempt) * 1000003ULL;
    for (size_t i : redo) {
      std::vector<bool> again_cut;
      const auto again =
          sample_completions(ctx.model, ctx.tokenizer, ctx.recipe.data.prompt_template, {share[i]},
                             config, K, begin + static_cast<int64_t>(i), 1, &again_cut, system);
      for (int64_t r = 0; r < K; ++r) {
        const size_t k = i * static_cast<size_t>(K) + static_cast<size_t>(r);
        if (!out.invalid[k]) continue;
        out.texts[k] = again[static_cast<size_t>(r)];
        out.truncated[k] = again_cut[static_cast<size_t>(r)];
        out.invalid[k] = is_invalid_answer(out.texts[k], out.truncated[k]);
        ++out.resampled;
      }
    }
  }
  return out;
}

// One line for people: "oracles {shorter_length: 1}".
std::string oracle_text(const std::map<std::string, double>& weights) {
  std::ostringstream out;
  out << "oracles {";
  bool first = true;
  for (const auto& [name, w] : weights) {
    out << (first ? "" : ", ") << name << ": " << w;
    first = false;
  }
  out << "}";
  return out.str();
}

// The judge that picked `user`'s training pairs, in words.
std::string training_judge_text(const DpoRecipe& r, const std::string& user) {
  if (const auto it = r.users.find(user); it != r.users.end()) return oracle_text(it->second);
  if (const auto it = r.reward_users.find(user); it != r.reward_users.end()) {
    const auto& f = it->second;
    if (f.count("profile")) return "profile " + f.at("profile");
    return "reward model " + (f.count("model") ? f.at("model") : std::string("?")) +
           (f.count("context") ? " with context " + f.at("context") : "");
  }
  if (const auto it = r.system_prompt_rows.find(user); it != r.system_prompt_rows.end())
    return "no training: the base with the system text \"" + it->second.at("text") + "\"";
  return "the labels of " + r.data.path.string();
}

}  // namespace

// The seed's win rates: for each held-out prompt, eval.completions samples from each user's
// adapter and from the base with the same seeds; each adapter's judge (eval_judge_of: an
// eval_users entry, or its own training judge) compares sample r of the adapter with sample r of
// the base. Invalid answers (empty, cut off) never win. The ranks split the prompts.
nlohmann::json evaluate_win_rates(const DpoContext& ctx, AdapterBank& bank,
                                  const std::vector<std::string>& adapters,
                                  const std::vector<std::string>& eval_prompts,
                                  MetricsWriter* metrics, int64_t step) {
  const DpoRecipe& r = ctx.recipe;
  // The rows: every adapter, then the system-prompt rows (the base with a system text).
  std::vector<std::string> users = adapters;
  for (const auto& [name, fields] : r.system_prompt_rows)
    users.push_back(name);
  const bool own_judges = r.eval_users.empty();
  // The judges: the eval users, or the adapters' own training judges (users with one).
  std::vector<std::string> judged;  // adapters with a judge
  std::map<std::string, std::string> judge_of;
  for (const auto& user : users)
    if (const std::string j = eval_judge_of(r, user); !j.empty()) {
      judged.push_back(user);
      judge_of[user] = j;
    }
  std::vector<std::string> judge_names;  // the matrix's columns
  if (own_judges) {
    judge_names = judged;
  } else {
    for (const auto& [name, weights] : r.eval_users)
      judge_names.push_back(name);
  }
  if (r.eval.completions == 0 || judged.empty() || eval_prompts.empty())
    return nlohmann::json::object();
  std::vector<std::string> prompts = eval_prompts;
  if (r.eval.prompts > 0 && static_cast<int64_t>(prompts.size()) > r.eval.prompts)
    prompts.resize(static_cast<size_t>(r.eval.prompts));
  const int64_t P = static_cast<int64_t>(prompts.size()), W = ctx.comm.world_size();
  const int64_t begin = P * ctx.comm.rank() / W, end = P * (ctx.comm.rank() + 1) / W;
  const std::vector<std::string> share(prompts.begin() + begin, prompts.begin() + end);
  GenerationConfig config;
  config.max_new_tokens = r.eval.max_new_tokens;
  config.temperature = r.eval.temperature;
  config.top_k = r.eval.top_k;
  config.top_p = r.eval.top_p;
  config.seed = static_cast<uint64_t>(r.eval.seed);
  const int64_t K = r.eval.completions;
  ctx.log << "[dpo] win rates: " << K << " samples for each of " << P
          << " held-out prompts from the base and from " << users.size() << " adapters\n";
  const double t0 = steady_clock_seconds();
  nlohmann::json mine;  // {"": base samples, user: samples}
  for (const std::string& who : [&] {
         std::vector<std::string> all = {""};  // the base first, then each user's adapter
         all.insert(all.end(), users.begin(), users.end());
         return all;
       }()) {
    // A system-prompt row is the base (no adapter) with its system text.
    const auto row = r.system_prompt_rows.find(who);
    const std::string system = row == r.system_prompt_rows.end() ? "" : row->second.at("text");
    const AdapterRoute route(bank, system.empty() ? who : std::string());
    const EvalAnswers a = sample_eval_answers(ctx, share, config, K, begin, system);
    mine[who] = {{"texts", a.texts},
                 {"truncated", a.truncated},
                 {"invalid", a.invalid},
                 {"resampled", a.resampled}};
  }
  struct Gathered {
    std::vector<std::string> texts;
    std::vector<bool> truncated, invalid;
    int64_t resampled = 0;
  };
  std::map<std::string, Gathered> samples;  // "" = the base
  for (const auto& part : ctx.comm.all_gather_strings(
           mine.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))) {
    const nlohmann::json parsed = nlohmann::json::parse(part);  // items() refers into it
    for (const auto& [who, got] : parsed.items()) {
      Gathered& g = samples[who];
      for (const auto& text : got["texts"])
        g.texts.push_back(text.get<std::string>());
      for (const auto& t : got["truncated"])
        g.truncated.push_back(t.get<bool>());
      for (const auto& t : got["invalid"])
        g.invalid.push_back(t.get<bool>());
      g.resampled += got["resampled"].get<int64_t>();
    }
  }
  ctx.log << "[dpo] sampled in " << seconds_text(steady_clock_seconds() - t0) << " s\n";

  // How many answers of each sampler may not win.
  nlohmann::json invalid;
  for (const auto& [who, g] : samples) {
    int64_t empty = 0, cut = 0, left = 0;
    for (size_t i = 0; i < g.texts.size(); ++i) {
      if (g.truncated[i]) ++cut;
      if (is_invalid_answer(g.texts[i], false)) ++empty;
      if (g.invalid[i]) ++left;
    }
    invalid[who.empty() ? std::string("(base)") : who] = {{"answers", g.texts.size()},
                                                          {"empty", empty},
                                                          {"truncated", cut},
                                                          {"resampled", g.resampled},
                                                          {"invalid", left}};
  }

  std::vector<std::vector<Comparison>> comparisons;  // per adapter (users order)
  for (const auto& user : users) {
    std::vector<Comparison> list;
    const Gathered &a = samples[user], &b = samples[""];
    for (size_t i = 0; i < prompts.size() * static_cast<size_t>(K); ++i)
      list.push_back({prompts[i / static_cast<size_t>(K)], a.texts[i], b.texts[i], a.invalid[i],
                      b.invalid[i]});
    comparisons.push_back(std::move(list));
  }
  // Each judge takes all its comparisons in one call: with eval.cross_user every adapter's
  // (column j of the matrix), else only those of the adapters it judges.
  std::map<std::string, WinRate> own;  // adapter -> its win rate under its judge
  std::vector<std::vector<double>> matrix(users.size(),
                                          std::vector<double>(judge_names.size(), NAN));
  const auto use = [&](const std::string& name, judges::Judge& judge) {
    const size_t j = static_cast<size_t>(std::find(judge_names.begin(), judge_names.end(), name) -
                                         judge_names.begin());
    if (r.eval.cross_user) {
      const std::vector<WinRate> column = win_rates(comparisons, judge);
      for (size_t i = 0; i < users.size(); ++i) {
        matrix[i][j] = column[i].rate();
        if (judge_of.count(users[i]) && judge_of[users[i]] == name) own[users[i]] = column[i];
      }
    } else {
      for (size_t i = 0; i < users.size(); ++i)
        if (judge_of.count(users[i]) && judge_of[users[i]] == name)
          own[users[i]] = win_rates({comparisons[i]}, judge).front();
    }
  };
  if (own_judges) {
    for_each_judge(ctx, judged, use);
  } else {
    for (const auto& name : judge_names) {
      const auto judge = judges::make_oracle_judge(r.eval_users.at(name));
      ctx.log << "[dpo]   eval user " << name << ": " << judge->description() << "\n";
      use(name, *judge);
    }
  }
  nlohmann::json out;
  std::ostringstream table;
  bool any_same = false;
  table << std::fixed << std::setprecision(3) << "[dpo] win rate of each adapter against the base ("
        << P << " prompts x " << K << " samples; ties count half; an empty or cut-off answer "
        << "never wins), judged by "
        << (own_judges ? "each adapter's own training judge" : "eval_users") << ":\n";
  for (const auto& user : judged) {
    const WinRate& w = own.at(user);
    const std::string& judge = judge_of.at(user);
    const bool same = eval_judge_is_training_judge(r, user, judge);
    any_same = any_same || same;
    const auto& bad = invalid[user];
    out["win_rate"][user] = {
        {"wins", w.wins},
        {"ties", w.ties},
        {"losses", w.losses},
        {"rate", w.rate()},
        {"judge", judge},
        {"judge_description",
         own_judges ? training_judge_text(r, judge) : oracle_text(r.eval_users.at(judge))},
        {"judge_picked_training_pairs", same},
        {"invalid_answers", bad}};
    table << "  " << std::setw(16) << std::left << user << std::right << " " << w.rate()
          << (same ? "*" : " ") << "  (" << w.wins << " wins, " << w.ties << " ties, " << w.losses
          << " losses; judge " << judge << "; " << bad["empty"].get<int64_t>() << " empty, "
          << bad["truncated"].get<int64_t>() << " cut off"
          << (r.eval.invalid == InvalidAnswers::kResample
                  ? ", " + std::to_string(bad["resampled"].get<int64_t>()) + " resampled"
                  : std::string())
          << ")\n";
  }
  if (any_same)
    table << "  * judged by the judge that also picked this adapter's training pairs: how well "
             "DPO fits the signal it was given (an upper bound), not a held-out judgement\n";
  out["invalid_answers"] = invalid;
  nlohmann::json judges_json;
  for (const auto& user : users)
    judges_json["training"][user] = training_judge_text(r, user);
  for (const auto& name : judge_names)
    judges_json["eval"][name] =
        own_judges ? training_judge_text(r, name) : oracle_text(r.eval_users.at(name));
  judges_json["eval_source"] = own_judges ? "training judges" : "eval_users";
  out["judges"] = judges_json;
  if (r.eval.cross_user) {
    nlohmann::json same = nlohmann::json::array();
    for (const auto& user : users) {
      nlohmann::json row = nlohmann::json::array();
      for (const auto& name : judge_names)
        row.push_back(eval_judge_is_training_judge(r, user, name));
      same.push_back(row);
    }
    out["cross_user"] = {{"adapters", users},
                         {"judges", judge_names},
                         {"win_rate", matrix},
                         {"judge_picked_training_pairs", same}};
    table << "[dpo] cross-user win rates against the base (row: adapter, column: judge):\n"
          << std::setw(18) << "";
    for (const auto& j : judge_names)
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
                             {"base", samples[""].texts[i]}};
      if (samples[""].invalid[i]) line["base_invalid"] = true;
      for (const auto& user : users) {
        line["users"][user] = samples[user].texts[i];
        if (samples[user].invalid[i]) line["invalid"][user] = true;
      }
      lines += line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
    write_file_atomic(r.output_dir / "eval_samples.jsonl", lines);
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
