// The SFT stage: causal-LM fine-tuning (full or LoRA) on `text`, or on `prompt` + `response`
// with the loss on response tokens only.
#pragma once

#include "stages/sft/sft_recipe.h"

namespace tailor {
namespace dist {
class Communicator;
}

// Trains, evaluates and exports as the recipe says (train/loop/training_loop.h runs the steps);
// errors throw. Runs on the ranks of dist::world() (one process unless started by mpirun), or
// with dist.device cuda on the GPUs' communicator.
void run_sft_stage(const SftRecipe& recipe);
// The same on the ranks of `comm` (tests run several in one process).
void run_sft_stage(const SftRecipe& recipe, dist::Communicator& comm);

}  // namespace tailor
