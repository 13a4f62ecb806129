// The second half of an elicit run, shared by both methods: every user answers
// elicit.questions questions per selector, and after every answer the learner's weights are
// scored on held-out pairs that the user labelled (20 Questions: accuracy; PReF: AUC). Writes each
// user's answers and profile (stages/elicit/elicit_session.h), summary.json, and logs the table.
#pragma once

#include <map>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "judges/oracles.h"
#include "stages/elicit/elicit_data.h"
#include "stages/elicit/elicit_recipe.h"
#include "stages/elicit/elicit_session.h"

namespace tailor {

// What the users are learned over: every candidate's embedding (20 Questions: the multi-reward
// model's hidden layer; PReF: phi), the unpersonalised weights over it (the mean head; the mean
// training user), and the exported model's id.
struct ElicitModel {
  const Embeddings& h;
  std::vector<double> default_weights;
  std::string model_id;
};

// The "users" object of summary.json: per user, the held-out pairs, the default model's metric,
// and per selector the metric after each K, the whole curve, and ms per question.
nlohmann::json elicit_users(const ElicitRecipe& recipe, const ElicitData& data,
                            const ElicitModel& model,
                            const std::map<std::string, judges::OracleWeights>& users,
                            std::ostream& log);

// "accuracy" (20 Questions) or "auc" (PReF).
const char* elicit_metric(const ElicitRecipe& recipe);

// The mean curve per selector over `users` (summary.json's "users"), and, when the recipe runs
// random beside another selector, how many answers random needs to reach that selector's mean at
// each K (null: not within the curve).
nlohmann::json compare_selectors(const ElicitRecipe& recipe, const nlohmann::json& users);

// Writes OUTPUT_DIR/summary.json (atomically): the method, the reward model (`reward_model`,
// what the stage knows of it), `users` from elicit_users, compare_selectors, the mean ms per
// question and the wall time since `started` (steady_clock_seconds()); then logs the table of
// the metric per user, selector and K (the seed reports' Table 1).
void write_elicit_summary(const ElicitRecipe& recipe, const nlohmann::json& users,
                          const nlohmann::json& reward_model, double started, std::ostream& log);

}  // namespace tailor
