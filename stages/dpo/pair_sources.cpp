#include "stages/dpo/pair_sources.h"

#include <algorithm>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "data/sampling/epoch_sampler.h"
#include "judges/judge_set.h"
#include "train/loop/metrics.h"

namespace tailor {
namespace fs = std::filesystem;

std::string seconds_text(double seconds) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(1) << seconds;
  return out.str();
}

GenerationConfig sampling_config(const DpoRecipe& r, int64_t round) {
  GenerationConfig config;
  config.max_new_tokens = r.generate.max_new_tokens;
  config.temperature = r.generate.temperature;
  config.top_k = r.generate.top_k;
  config.top_p = r.generate.top_p;
  config.seed = static_cast<uint64_t>(r.generate.seed + round);
  return config;
}

Samples sample_answers(const DpoContext& ctx, const std::vector<std::string>& prompts,
                       const GenerationConfig& config, const std::string& model_name) {
  const int64_t P = static_cast<int64_t>(prompts.size()), W = ctx.comm.world_size();
  const int64_t begin = P * ctx.comm.rank() / W, end = P * (ctx.comm.rank() + 1) / W;
  const double t0 = steady_clock_seconds();
  std::vector<bool> cut;  // per sample of this rank: stopped at max_new_tokens
  const std::vector<std::string> mine =
      sample_completions(ctx.model, ctx.tokenizer, ctx.recipe.data.prompt_template,
                         std::vector<std::string>(prompts.begin() + begin, prompts.begin() + end),
                         config, ctx.recipe.generate.completions, begin, /*batch_prompts=*/8, &cut);
  Samples out;
  for (const auto& part : ctx.comm.all_gather_strings(
           nlohmann::json({{"texts", mine}, {"truncated", cut}})
               .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))) {
    const nlohmann::json gathered = nlohmann::json::parse(part);
    for (const auto& s : gathered.at("texts"))
      out.texts.push_back(s.get<std::string>());
    for (const auto& t : gathered.at("truncated"))
      out.truncated.push_back(t.get<bool>());
  }
  const int64_t n_cut = std::count(out.truncated.begin(), out.truncated.end(), true);
  ctx.log << "[dpo] sampled " << out.texts.size() << " answers from " << model_name << " in "
          << seconds_text(steady_clock_seconds() - t0) << " s; " << n_cut
          << " stopped at max_new_tokens (trained without a closing EOS)\n";
  return out;
}

bool has_judge(const DpoRecipe& recipe, const std::string& user) {
  return recipe.users.count(user) > 0 || recipe.reward_users.count(user) > 0;
}

void for_each_judge(const DpoContext& ctx, const std::vector<std::string>& users,
                    const std::function<void(const std::string&, judges::Judge&)>& use) {
  judges::RewardJudgeOptions options;
  options.comm = &ctx.comm;
  judges::for_each_judge(users, ctx.recipe.users, ctx.recipe.reward_users, options,
                         [&](const std::string& user, judges::Judge& judge) {
                           ctx.log << "[dpo]   " << user << " judged by " << judge.description()
                                   << "\n";
                           use(user, judge);
                         });
}

std::vector<TextPair> pick_all_pairs(
    const DpoContext& ctx, const std::vector<std::string>& users,
    const std::vector<std::string>& prompts,
    const std::function<const Samples&(const std::string& user)>& samples_of) {
  const size_t K = static_cast<size_t>(ctx.recipe.generate.completions);
  std::map<std::string, PromptAnswers> answers;  // per distinct Samples: one per sampler
  return pick_all_pairs(ctx, users, prompts, [&](const std::string& user) -> const PromptAnswers& {
    const Samples& mine = samples_of(user);
    PromptAnswers& out = answers[user];
    out.texts.assign(prompts.size(), {});
    out.cut.assign(prompts.size(), {});
    for (size_t i = 0; i < prompts.size(); ++i) {
      out.texts[i].assign(mine.texts.begin() + i * K, mine.texts.begin() + (i + 1) * K);
      for (size_t k = i * K; k < (i + 1) * K; ++k)
        if (mine.truncated[k]) out.cut[i].insert(mine.texts[k]);
    }
    return out;
  });
}

std::vector<TextPair> pick_all_pairs(
    const DpoContext& ctx, const std::vector<std::string>& users,
    const std::vector<std::string>& prompts,
    const std::function<const PromptAnswers&(const std::string& user)>& answers_of) {
  std::map<std::string, std::vector<std::vector<TextPair>>> picked;  // user -> per prompt
  for_each_judge(ctx, users, [&](const std::string& user, judges::Judge& judge) {
    const PromptAnswers& mine = answers_of(user);
    picked[user] = ctx.recipe.generate.pick == PairPick::kRandom
                       ? pick_random_pairs(user, judge, prompts, mine)
                       : pick_pairs(user, judge, prompts, mine.texts,
                                    ctx.recipe.generate.pairs_per_prompt, &mine.cut);
  });
  std::vector<TextPair> pairs;               // prompt-major, users in the order given
  std::map<std::string, int64_t> undecided;  // prompts where a user found no pair
  for (size_t i = 0; i < prompts.size(); ++i)
    for (const auto& user : users) {
      const auto& mine = picked[user][i];
      if (mine.empty()) ++undecided[user];
      pairs.insert(pairs.end(), mine.begin(), mine.end());
    }
  for (const auto& [user, count] : undecided)
    ctx.log << "[dpo]   " << user << ": no preference among the answers to " << count << " of "
            << prompts.size() << " prompts\n";
  return pairs;
}

std::vector<std::vector<TextPair>> pick_random_pairs(const std::string& user, judges::Judge& judge,
                                                     const std::vector<std::string>& prompts,
                                                     const PromptAnswers& answers) {
  std::vector<judges::Matchup> matchups;
  std::vector<size_t> asked;  // the prompts whose first two answers go to the judge
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (answers.texts[i].size() < 2) continue;
    const std::string& a = answers.texts[i][0];
    const std::string& b = answers.texts[i][1];
    if (a.empty() || b.empty() || a == b) continue;  // a pair needs two different responses
    matchups.push_back({prompts[i], a, b});
    asked.push_back(i);
  }
  std::vector<std::vector<TextPair>> out(prompts.size());
  if (matchups.empty()) return out;
  const std::vector<int> verdicts = judge.compare(matchups);
  for (size_t m = 0; m < asked.size(); ++m) {
    if (verdicts[m] == 0) continue;
    const size_t i = asked[m];
    const std::string& chosen = answers.texts[i][verdicts[m] > 0 ? 0 : 1];
    const std::string& rejected = answers.texts[i][verdicts[m] > 0 ? 1 : 0];
    out[i].push_back({user, prompts[i], chosen, rejected, answers.cut[i].count(chosen) > 0,
                      answers.cut[i].count(rejected) > 0});
  }
  return out;
}

PromptSplit split_prompts(const DpoRecipe& r, const std::vector<std::string>& prompts) {
  const int64_t n = static_cast<int64_t>(prompts.size());
  data::EpochSampler split(n, static_cast<uint64_t>(r.generate.seed) ^ 0x5eedULL);
  const auto order = split.permutation(0);
  const double fraction = r.data.eval_fraction;
  const int64_t n_eval =
      fraction <= 0 || n < 2
          ? 0
          : std::clamp<int64_t>(std::llround(fraction * static_cast<double>(n)), 1, n - 1);
  std::vector<bool> held_out(prompts.size(), false);
  for (int64_t k = 0; k < n_eval; ++k)
    held_out[static_cast<size_t>(order[static_cast<size_t>(k)])] = true;
  PromptSplit out;
  for (size_t i = 0; i < prompts.size(); ++i)
    (held_out[i] ? out.eval : out.train).push_back(prompts[i]);
  const int64_t keep = r.data.train_prompts;
  if (keep > 0 && keep < static_cast<int64_t>(out.train.size())) {
    // n of them, chosen by the training seed (the baseline's n prompts differ between seeds),
    // kept in file order.
    data::EpochSampler choice(static_cast<int64_t>(out.train.size()),
                              static_cast<uint64_t>(r.seed) ^ 0x7a1e5ULL);
    std::vector<int64_t> chosen = choice.permutation(0);
    chosen.resize(static_cast<size_t>(keep));
    std::sort(chosen.begin(), chosen.end());
    std::vector<std::string> train;
    for (int64_t i : chosen)
      train.push_back(out.train[static_cast<size_t>(i)]);
    out.train = std::move(train);
  }
  return out;
}

int64_t Rounds::at(int64_t step) const {
  int64_t round = 0;
  while (round + 1 < count && start(round + 1) <= step)
    ++round;
  return round;
}

fs::path round_pairs_file(const fs::path& run_dir, int64_t round) {
  return round == 0 ? run_dir / "pairs.jsonl"
                    : run_dir / ("pairs_round_" + std::to_string(round + 1) + ".jsonl");
}

}  // namespace tailor
