#include "models/io/peft.h"

#include <cmath>
#include <map>
#include <sstream>
#include <vector>

#include "common/error.h"
#include "common/name_list.h"
#include "common/shape_string.h"

namespace tailor {
namespace {

const char* kPeftScope = "peft";

[[noreturn]] void peft_fail(const std::string& source, const std::string& message) {
  throw Error(kPeftScope, source + ": " + message);
}

// Writes whole numbers as JSON integers (PEFT types r and lora_alpha as int).
nlohmann::json number(double value) {
  if (std::floor(value) == value && std::fabs(value) < 1e15) {
    return static_cast<int64_t>(value);
  }
  return value;
}

}  // namespace

nlohmann::json peft_adapter_config(const LoraConfig& config,
                                   const std::string& base_model_name_or_path, bool fan_in_fan_out,
                                   const std::string& task_type) {
  config.validate();
  return {
      {"alpha_pattern", nlohmann::json::object()},
      {"base_model_name_or_path", base_model_name_or_path},
      {"bias", "none"},
      {"fan_in_fan_out", fan_in_fan_out},
      {"inference_mode", true},
      {"init_lora_weights", true},
      {"layers_pattern", nullptr},
      {"layers_to_transform", nullptr},
      {"lora_alpha", number(config.alpha)},
      {"lora_dropout", config.dropout},
      {"modules_to_save", nullptr},
      {"peft_type", "LORA"},
      {"r", config.rank},
      {"rank_pattern", nlohmann::json::object()},
      {"revision", nullptr},
      {"target_modules", config.targets},
      {"task_type", task_type},
      {"use_rslora", config.rslora},
  };
}

LoraConfig lora_config_from_peft(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object()) peft_fail(source, "expected a JSON object");
  auto field = [&](const char* key) -> const nlohmann::json* {
    auto it = json.find(key);
    return it == json.end() || it->is_null() ? nullptr : &*it;
  };
  if (const auto* type = field("peft_type"); !type || *type != "LORA") {
    peft_fail(source, "peft_type: expected \"LORA\", got " + (type ? type->dump() : "nothing"));
  }
  LoraConfig config;
  const auto* r = field("r");
  if (!r || !r->is_number_integer()) peft_fail(source, "r: expected an integer rank");
  config.rank = r->get<int64_t>();
  if (const auto* alpha = field("lora_alpha")) {
    if (!alpha->is_number())
      peft_fail(source, "lora_alpha: expected a number, got " + alpha->dump());
    config.alpha = alpha->get<double>();
  } else {
    config.alpha = 8;  // PEFT's LoraConfig default
  }
  if (const auto* dropout = field("lora_dropout")) {
    if (!dropout->is_number()) peft_fail(source, "lora_dropout: expected a number");
    config.dropout = dropout->get<double>();
  }
  if (const auto* rslora = field("use_rslora")) {
    if (!rslora->is_boolean()) peft_fail(source, "use_rslora: expected true or false");
    config.rslora = rslora->get<bool>();
  }
  const auto* targets = field("target_modules");
  if (!targets) peft_fail(source, "target_modules: expected a list of module names");
  if (targets->is_string()) {
    peft_fail(source, "target_modules: a regular expression (" + targets->dump() +
                          ") is not supported; list the module names");
  }
  if (!targets->is_array()) peft_fail(source, "target_modules: expected a list of module names");
  for (const auto& target : *targets) {
    if (!target.is_string())
      peft_fail(source, "target_modules: expected strings, got " + target.dump());
    config.targets.push_back(target.get<std::string>());
  }
  if (const auto* bias = field("bias"); bias && *bias != "none") {
    peft_fail(source, "bias: only \"none\" is supported, got " + bias->dump());
  }
  if (const auto* dora = field("use_dora"); dora && dora->is_boolean() && dora->get<bool>()) {
    peft_fail(source, "use_dora: DoRA adapters are not supported");
  }
  if (field("layers_to_transform")) peft_fail(source, "layers_to_transform: not supported");
  for (const char* key : {"rank_pattern", "alpha_pattern"}) {
    if (const auto* pattern = field(key); pattern && !pattern->empty()) {
      peft_fail(source, std::string(key) + ": per-module patterns are not supported");
    }
  }
  try {
    config.validate();
  } catch (const Error& error) {
    peft_fail(source, error.what());
  }
  return config;
}

TensorMap peft_adapter_tensors(const torch::nn::Module& model) {
  TensorMap out;
  for (const auto& item : lora_parameters(model)) {
    out.emplace(kPeftPrefix + item.key(), item.value().detach());
  }
  return out;
}

void load_peft_adapter_tensors(torch::nn::Module& model, const TensorMap& tensors,
                               const LoraConfig& config, const std::string& source) {
  if (!has_lora(model)) {
    apply_lora(model, config);
  } else if (lora_merged(model)) {
    peft_fail(source, "cannot load adapter tensors into a merged model; unmerge first");
  }
  auto parameters = lora_parameters(model);
  const std::string prefix = kPeftPrefix;
  std::map<std::string, at::Tensor> matched;
  std::vector<std::string> unexpected;
  for (const auto& [key, tensor] : tensors) {
    const std::string name = key.rfind(prefix, 0) == 0 ? key.substr(prefix.size()) : key;
    const at::Tensor* parameter = parameters.find(name);
    if (!parameter) {
      unexpected.push_back(key);
      continue;
    }
    if (matched.count(name)) peft_fail(source, name + " is given twice");
    if (!tensor.defined() || !at::isFloatingType(tensor.scalar_type())) {
      peft_fail(source, key + " must be a floating-point tensor");
    }
    if (tensor.sizes() != parameter->sizes()) {
      peft_fail(source, key + " has shape " + shape_string(tensor.sizes()) +
                            ", the model expects " + shape_string(parameter->sizes()));
    }
    matched.emplace(name, tensor);
  }
  if (!unexpected.empty()) peft_fail(source, "unexpected key(s) " + list_some(unexpected));
  std::vector<std::string> missing;
  for (const auto& item : parameters) {
    if (!matched.count(item.key())) missing.push_back(prefix + item.key());
  }
  if (!missing.empty()) peft_fail(source, "missing key(s) " + list_some(missing));
  torch::NoGradGuard no_grad;
  for (auto& item : parameters)
    item.value().copy_(matched.at(item.key()));
}

}  // namespace tailor
