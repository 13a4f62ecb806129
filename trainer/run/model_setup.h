// The network a recipe's model section describes, shared by the training stages.
#pragma once

#include <c10/core/ScalarType.h>

#include "models/gpt2/gpt2.h"
#include "models/gpt2/gpt2_config.h"
#include "trainer/recipe/recipe.h"

namespace tailor {

// init: random -> the preset with the n_* overrides; init: pretrained -> model.path/config.json.
// Dropout comes from model.dropout either way. Validated (Error names "recipe model section").
GPT2Config gpt2_config_for(const ModelSection& model);

// A GPT-2 of that config in `dtype`: HF's initialisation drawn from torch's default generator
// (seed it first) for init: random, the weights in model.path for init: pretrained.
GPT2LMHead build_gpt2(const ModelSection& model, const GPT2Config& config, c10::ScalarType dtype);

}  // namespace tailor
