// The per-user DPO stage (stage: dpo; recipe in dpo_recipe.h, the method in docs/dpo.md).
#pragma once

#include "dist/communicator.h"
#include "stages/dpo/dpo_recipe.h"

namespace tailor {

// Trains one adapter per user, evaluates and exports as the recipe says (the steps run in
// train/loop/training_loop.h); errors throw. On the ranks of dist::world().
void run_dpo_stage(const DpoRecipe& recipe);
// The same on the ranks of `comm` (tests run several stages in one process).
void run_dpo_stage(const DpoRecipe& recipe, dist::Communicator& comm);

}  // namespace tailor
