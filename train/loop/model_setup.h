// The network a recipe's model section describes, shared by the training stages.
#pragma once

#include <c10/core/ScalarType.h>
#include <nlohmann/json.hpp>

#include "models/core/causal_lm.h"
#include "train/recipe/sections.h"

namespace tailor {

// The config.json of the model to build: init: random -> the preset with the n_* overrides
// (n_layer, n_head, n_embd, n_positions; for Mistral they set num_hidden_layers,
// num_attention_heads, hidden_size, max_position_embeddings); init: pretrained ->
// model.path/config.json. Dropout comes from model.dropout either way (GPT-2: resid, embd and
// attn dropout; Mistral: attention_dropout). Errors name "recipe model section" or the file.
nlohmann::json model_config_for(const ModelSection& model);

// A model of that config in `dtype`: HF's initialisation drawn from torch's default generator
// (seed it first) for init: random, the weights in model.path for init: pretrained.
CausalLM build_model(const ModelSection& model, const nlohmann::json& config,
                     c10::ScalarType dtype);

}  // namespace tailor
