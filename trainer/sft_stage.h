// The SFT stage: causal-LM fine-tuning of GPT-2 (full or LoRA) on `text` or on
// `prompt` + `response` with the loss on response tokens only.
#pragma once

#include "trainer/recipe.h"

namespace tailor {

// setup -> (resume) -> train -> final checkpoint, evaluation and export. Returns the exit code.
int run_sft_stage(const SftRecipe& recipe);

}  // namespace tailor
