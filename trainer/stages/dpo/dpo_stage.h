// The per-user DPO stage (stage: dpo; recipe in dpo_recipe.h, the method in docs/dpo.md).
#pragma once

#include "dist/communicator.h"
#include "trainer/stages/dpo/dpo_recipe.h"

namespace tailor {

// Runs the stage on the ranks of dist::world(); returns the process exit code.
int run_dpo_stage(const DpoRecipe& recipe);
// The same on the ranks of `comm` (tests run several stages in one process).
int run_dpo_stage(const DpoRecipe& recipe, dist::Communicator& comm);

}  // namespace tailor
