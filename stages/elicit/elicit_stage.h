// The elicit stage: learn new users' preferences from a few pairwise answers (20 Questions).
//   1. The frozen backbone's candidates and features (stages/elicit/elicit_data.h).
//   2. The multi-reward model (models/heads/multi_reward.h) trained on the shared loop: one
//      Bradley-Terry head per training oracle, each on the pairs its oracle labels.
//   3. Export (models/io/multi_reward_export.h), then for each user in `users` and each
//      selector, the query loop (stages/elicit/query_loop.h) with that user's oracle mixture
//      answering, and the held-out accuracy of the posterior mean after every answer.
// One process.
#pragma once

#include "stages/elicit/elicit_recipe.h"

namespace tailor {

void run_elicit_stage(const ElicitRecipe& recipe);

}  // namespace tailor
