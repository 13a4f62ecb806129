#include "models/registry.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "models/gpt2/gpt2.h"
#include "models/mistral/mistral.h"

namespace tailor {

namespace {

// config.json's model_type, or an error naming `source` and the key.
std::string model_type_of(const nlohmann::json& config, const std::string& source) {
  if (!config.is_object()) throw Error("model", source + ": expected a JSON object");
  const auto type = config.find("model_type");
  if (type == config.end() || !type->is_string()) {
    throw Error("model", source + ": model_type: missing (expected \"gpt2\" or \"mistral\")");
  }
  const std::string model_type = type->get<std::string>();
  if (model_type != "gpt2" && model_type != "mistral") {
    throw Error("model", source + ": model_type: unsupported \"" + model_type +
                             "\" (tailor has gpt2 and mistral)");
  }
  return model_type;
}

}  // namespace

void check_model_config(const nlohmann::json& config, const std::string& source) {
  if (model_type_of(config, source) == "gpt2") {
    GPT2Config::from_json(config, source).validate(source);
  } else {
    MistralConfig::from_json(config, source).validate(source);
  }
}

CausalLM causal_lm_from_config(const nlohmann::json& config, const std::string& source,
                               bool init_weights) {
  if (model_type_of(config, source) == "gpt2") {
    return std::make_shared<GPT2LMHeadImpl>(GPT2Config::from_json(config, source), init_weights);
  }
  return std::make_shared<MistralForCausalLMImpl>(MistralConfig::from_json(config, source),
                                                  init_weights);
}

nlohmann::json preset_config(const std::string& name) {
  for (const auto& preset : GPT2Config::preset_names())
    if (preset == name) return GPT2Config::preset(name).to_json();
  for (const auto& preset : MistralConfig::preset_names())
    if (preset == name) return MistralConfig::preset(name).to_json();
  std::string names;
  for (const auto& preset : preset_names())
    names += (names.empty() ? "" : ", ") + preset;
  throw Error("model", "unknown preset \"" + name + "\" (expected one of " + names + ")");
}

std::vector<std::string> preset_names() {
  // Smallest first within each family, as `tailor run --help` and recipe errors list them; a
  // test checks that this covers every family's presets.
  return {"gpt2-tiny",  "gpt2-mini", "gpt2",         "gpt2-medium",
          "gpt2-large", "gpt2-xl",   "mistral-tiny", "mistral-7b"};
}

}  // namespace tailor
