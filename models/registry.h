// Which causal LM a config.json or a preset name builds: config.json's `model_type` picks the
// family ("gpt2" -> models/gpt2, "mistral" -> models/mistral). The one place that knows every
// family; everything else holds a CausalLM (models/core/causal_lm.h).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "models/core/causal_lm.h"

namespace tailor {

// A model for an HF config.json. Unknown model_type values are errors naming `source` and the
// key. With init_weights the parameters get HF's initialisation (torch's default generator);
// without, they are left unset for a checkpoint to be loaded right after.
CausalLM causal_lm_from_config(const nlohmann::json& config, const std::string& source,
                               bool init_weights);

// Validates a config.json as causal_lm_from_config would, without building the model (which for
// a 7B allocates its parameters and initialises its embedding table): errors name `source` and
// the key.
void check_model_config(const nlohmann::json& config, const std::string& source);

// The config.json of a named preset ("gpt2", "gpt2-tiny", ..., "mistral-7b", "mistral-tiny").
// Throws Error("model", ...) listing the presets for an unknown name.
nlohmann::json preset_config(const std::string& name);
std::vector<std::string> preset_names();

}  // namespace tailor
