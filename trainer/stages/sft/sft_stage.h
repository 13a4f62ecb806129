// The SFT stage: causal-LM fine-tuning of GPT-2 (full or LoRA) on `text` or on
// `prompt` + `response` with the loss on response tokens only.
#pragma once

#include "trainer/recipe/recipe.h"

namespace tailor {
namespace dist {
class Communicator;
}

// setup -> (resume) -> train -> final checkpoint, evaluation and export. Returns the exit code.
// Runs on the ranks of dist::world() (one process unless started by mpirun).
int run_sft_stage(const SftRecipe& recipe);
// The same on the ranks of `comm` (tests run several in one process).
int run_sft_stage(const SftRecipe& recipe, dist::Communicator& comm);

}  // namespace tailor
