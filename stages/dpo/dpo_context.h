// What the parts of the DPO stage share: the recipe, the ranks, the log, the tokenizer and the
// frozen base that carries one LoRA adapter per user.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "dist/communicator.h"
#include "models/core/causal_lm.h"
#include "models/tokenizer/tokenizer.h"
#include "stages/dpo/dpo_recipe.h"

namespace tailor {

struct DpoContext {
  const DpoRecipe& recipe;
  dist::Communicator& comm;
  std::ostream& log;  // stderr on rank 0, nothing elsewhere
  const Tokenizer& tokenizer;
  CausalLMImpl& model;

  bool rank0() const { return comm.rank() == 0; }
};

// Seconds with one decimal, for log lines.
std::string seconds_text(double seconds);

}  // namespace tailor
