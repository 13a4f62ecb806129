#include "stages/chain/chain_stage.h"

#include <cmath>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/markdown_table.h"
#include "train/loop/metrics.h"

namespace tailor {
namespace fs = std::filesystem;
namespace {

// A table of the recipe as an override value: JSON is YAML's flow style.
std::string flow(const nlohmann::json& value) {
  return value.dump();
}

nlohmann::json read_summary(const fs::path& run) {
  const fs::path file = run / "summary.json";
  if (!fs::is_regular_file(file))
    throw Error("chain", file.string() + ": missing; the step did not finish");
  return nlohmann::json::parse(read_file(file));
}

// One row of the table: a method, the run that holds it and the adapter name of each user.
struct Row {
  std::string key;    // summary key: 20q, pref, system, baseline_n5, oracle
  std::string label;  // for people
  fs::path run;
  std::string suffix;  // adapter = user + suffix
};

}  // namespace

void run_chain_stage(const ChainRecipe& r, const ChainStepRunner& run_step) {
  const fs::path out = r.output_dir;
  const fs::path base_export = r.base_dir / "export";
  const std::string seed = "seed=" + std::to_string(r.seed);
  const std::string model = "model.path=" + fs::absolute(base_export).string();
  const std::string cache = "cache_dir=" + fs::absolute(r.base_dir / "elicit_cache").string();
  nlohmann::json users = nlohmann::json::object();
  for (const auto& [user, weights] : r.users)
    users[user] = weights;
  const double start = steady_clock_seconds();

  // 1. The base: trained once, shared by every seed.
  if (fs::is_regular_file(base_export / "config.json")) {
    std::cout << "[chain] base: using " << base_export.string() << "\n";
  } else {
    run_step("base", r.base_recipe, {"output_dir=" + r.base_dir.string()});
  }

  // 2. Each user answers K questions, once per method; the profiles carry the answers on.
  const auto elicit = [&](const std::string& dir, const fs::path& recipe, int64_t answers,
                          const std::string& selector) {
    run_step(dir, recipe,
             {seed, "output_dir=" + (out / dir).string(), model, cache, "users=" + flow(users),
              "elicit.questions=[" + std::to_string(answers) + "]",
              "elicit.selector=[" + selector + "]"});
    std::map<std::string, fs::path> profiles;
    for (const auto& [user, weights] : r.users)
      profiles[user] = fs::absolute(out / dir / "users" / user / selector / "profile.json");
    return profiles;
  };
  const auto twenty_questions =
      elicit("elicit_20q", r.twenty_questions, r.twenty_questions_answers, "info_gain");
  const auto pref = elicit("elicit_pref", r.pref, r.pref_answers, "active");
  const double last_answer = steady_clock_seconds();

  // 3. The chains, the oracle-picked upper bound and the system prompts, in one dpo run.
  nlohmann::json oracle_users = nlohmann::json::object(), profile_users = nlohmann::json::object(),
                 system_rows = nlohmann::json::object();
  for (const auto& [user, weights] : r.users) {
    oracle_users[user + "@oracle"] = weights;
    profile_users[user + "@20q"] = {{"profile", twenty_questions.at(user).string()}};
    profile_users[user + "@pref"] = {{"profile", pref.at(user).string()}};
  }
  for (const auto& [user, fields] : r.system_prompts)
    system_rows[user + "@system"] = {{"text", fields.at("text")}};
  std::vector<std::string> dpo_overrides = {seed,
                                            "output_dir=" + (out / "dpo").string(),
                                            model,
                                            "users=" + flow(oracle_users),
                                            "reward_users=" + flow(profile_users),
                                            "eval_users=" + flow(users)};
  if (!system_rows.empty()) dpo_overrides.push_back("system_prompt_rows=" + flow(system_rows));
  run_step("dpo", r.dpo, dpo_overrides);

  // 4. Baseline DPO: n prompts, two random samples each, the oracle's labels, a few epochs.
  std::vector<int64_t> ns;
  for (double n : r.baseline_prompts)
    ns.push_back(static_cast<int64_t>(n));
  for (int64_t n : ns) {
    const std::string name = "baseline_n" + std::to_string(n);
    run_step(name, r.baseline,
             {seed, "output_dir=" + (out / name).string(), model, "users=" + flow(users),
              "eval_users=" + flow(users), "data.train_prompts=" + std::to_string(n),
              "train.pairs_per_user=" + std::to_string(n),
              "train.max_steps=" + std::to_string(r.baseline_epochs), "generate.pick=random",
              "generate.completions=2"});
  }

  // 5. The table.
  std::vector<Row> rows = {
      {"20q", "20 Questions chain, K = " + std::to_string(r.twenty_questions_answers), out / "dpo",
       "@20q"},
      {"pref", "PReF chain, K = " + std::to_string(r.pref_answers), out / "dpo", "@pref"}};
  if (!r.system_prompts.empty())
    rows.push_back({"system", "system prompt", out / "dpo", "@system"});
  for (int64_t n : ns)
    rows.push_back({"baseline_n" + std::to_string(n), "baseline DPO, n = " + std::to_string(n),
                    out / ("baseline_n" + std::to_string(n)), ""});
  rows.push_back({"oracle", "DPO on oracle-picked pairs (upper bound)", out / "dpo", "@oracle"});

  nlohmann::json table = nlohmann::json::array();
  std::map<std::string, std::map<std::string, double>> rate;  // row key -> user -> win rate
  for (const Row& row : rows) {
    const nlohmann::json summary = read_summary(row.run);
    nlohmann::json entry = {{"key", row.key}, {"method", row.label}, {"run", row.run.string()}};
    for (const auto& [user, weights] : r.users) {
      const std::string adapter = user + row.suffix;
      if (!summary.contains("win_rate") || !summary["win_rate"].contains(adapter))
        throw Error("chain", (row.run / "summary.json").string() + ": no win rate of " + adapter);
      const auto& w = summary["win_rate"][adapter];
      rate[row.key][user] = w["rate"].get<double>();
      entry["win_rate"][user] = w["rate"];
      entry["judge"][user] = w["judge_description"];
      entry["judge_picked_training_pairs"][user] = w["judge_picked_training_pairs"];
      entry["invalid_answers"][user] = w["invalid_answers"]["invalid"];
    }
    table.push_back(entry);
  }
  const nlohmann::json dpo_summary = read_summary(out / "dpo");
  nlohmann::json summary = {{"stage", "chain"},
                            {"seed", r.seed},
                            {"users", users},
                            {"table", table},
                            {"judged_by", "the users' own oracles (the dpo runs' eval_users)"}};
  // The chains against the largest baseline, per user.
  if (!ns.empty()) {
    const std::string baseline = "baseline_n" + std::to_string(ns.back());
    for (const char* chain : {"20q", "pref"})
      for (const auto& [user, weights] : r.users)
        summary["margin_over_" + baseline][chain][user] = rate[chain][user] - rate[baseline][user];
  }
  if (dpo_summary.contains("seconds"))
    summary["seconds_last_answer_to_adapters"] = dpo_summary["seconds"]["to_adapters"];
  summary["seconds_elicitation_to_last_answer"] = last_answer - start;
  summary["wall_seconds"] = steady_clock_seconds() - start;

  std::ostringstream md;
  md << std::fixed << std::setprecision(3);
  std::vector<std::string> user_columns;
  for (const auto& [user, weights] : r.users)
    user_columns.push_back(user);
  write_markdown_header(md, "method", user_columns);
  for (const auto& entry : table) {
    md << "| " << entry["method"].get<std::string>() << " |";
    for (const auto& [user, weights] : r.users) {
      md << " " << entry["win_rate"][user].get<double>();
      if (entry["judge_picked_training_pairs"][user].get<bool>()) md << " *";
      md << " |";
    }
    md << "\n";
  }
  md << "\nWin rates against the base, judged by each user's oracle (eval_users). * the judge also "
        "labelled the training pairs (baseline DPO, the oracle-picked upper bound).\n";
  write_file_atomic(out / "table.md", md.str());
  write_file_atomic(out / "summary.json", summary.dump(2) + "\n");
  std::cout << "[chain] win rates against the base, seed " << r.seed << ":\n"
            << md.str() << "[chain] last answer to adapters: "
            << (summary.contains("seconds_last_answer_to_adapters")
                    ? std::to_string(summary["seconds_last_answer_to_adapters"].get<double>())
                    : std::string("?"))
            << " s (one dpo run, every adapter); summary: " << (out / "summary.json").string()
            << "\n";
}

}  // namespace tailor
