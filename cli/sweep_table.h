// The tables `tailor sweep` prints (cli/cli_sweep.cpp), built from the runs' summary.json
// files alone, so they can be tested without training.
//
// - Reward-stage recipes (and any stage other than dpo): one row per recipe, held-out accuracy
//   mean ± std over seeds, runs converged, mean steps and epochs to converge, wall time per run.
// - dpo recipes: one row per (recipe, user): the user's adapter's win rate against the base
//   under its own judge (summary `win_rate`), held-out reward accuracy and margin (summary
//   `eval`), each mean ± std over the seeds that finished; seeds finished; wall time per run.
//   Then, for each dpo recipe whose runs have a `cross_user` matrix, that matrix averaged over
//   the seeds (rows: adapters, columns: judges).
// - elicit recipes: one row per (recipe, user, selector), the unpersonalised model ("default",
//   the mean of the reward model's heads) first: the held-out accuracy in % after each K of
//   elicit.questions, mean ± std over the seeds that finished (seed 000's Table 1).
// - chain recipes: per recipe, one row per method and one column per user (seed 000's Table 2):
//   the win rate against the base in %, mean ± std over the seeds that finished, then each
//   chain's margin over the largest baseline DPO in points.
// - agent recipes: per recipe, the win rates of each user's preference agent against the five
//   baselines of seed 002 (rows: users and their mean), the cross-user matrix (rows: users as
//   judges, columns: agents, and in how many seeds each agent was best on its own user), and the
//   learning curve of rule vs naive fine-tuning; each in % as mean ± std over the seeds.
// Standard deviations are sample ones (n - 1; 0 for one run). Values a run does not have (a
// user without a judge has no win rate) show as "–".
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tailor::cli {

// One recipe's runs in a sweep.
struct SweepRecipe {
  std::string recipe;  // the recipe file as given; the tables show its file name
  std::string stage;   // its `stage`: "dpo" and "elicit" have their own tables, the rest share the
                       // reward one
  // One entry per seed, as OUT/sweep.json keeps them: {"seed": S, "summary": {...}} for a run
  // that finished, {"seed": S, "error": "..."} for one that failed.
  std::vector<nlohmann::json> runs;
};

// Throws Error("sweep", ...) when a finished run's summary lacks what the tables read (the sweep
// then counts that run as failed): reward: accuracy, wall_seconds, converged (and, when converged,
// converge_step and converge_epoch); dpo: users, wall_seconds; elicit: questions, wall_seconds,
// users (each with default_accuracy and selectors.<name>.accuracy).
void check_sweep_summary(const std::string& stage, const nlohmann::json& summary);

// The Markdown tables, separated by blank lines: the reward table when any recipe is neither dpo
// nor elicit, then the per-user dpo table and the cross-user matrices when any recipe is dpo,
// then the elicit table when any recipe is elicit.
std::string sweep_tables(const std::vector<SweepRecipe>& recipes);

}  // namespace tailor::cli
