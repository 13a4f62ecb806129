#include "models/core/causal_lm.h"

#include <map>

#include <torch/nn/modules/container/modulelist.h>
#include <torch/utils.h>

#include "common/error.h"
#include "common/name_list.h"
#include "common/shape_string.h"
#include "models/core/lora.h"

#include <nlohmann/json.hpp>

namespace tailor {

namespace {
// LoRA factors and per-user adapter banks: not part of the HF base state.
bool is_adapter_parameter(const std::string& name) {
  return is_lora_parameter(name) || is_adapter_bank_parameter(name);
}
}  // namespace

at::ScalarType CausalLMImpl::dtype() const {
  return token_embedding_weight().scalar_type();
}

std::pair<std::string, std::shared_ptr<torch::nn::Module>> CausalLMImpl::base_model() const {
  std::pair<std::string, std::shared_ptr<torch::nn::Module>> found;
  for (const auto& child : named_children()) {
    if (child.key() == "lm_head") continue;
    if (found.second) throw Error(model_type(), "more than one base module besides lm_head");
    found = {child.key(), child.value()};
  }
  if (!found.second) throw Error(model_type(), "no base module besides lm_head");
  return found;
}

double CausalLMImpl::initializer_range() const {
  return hf_config(dtype()).value("initializer_range", 0.02);
}

at::Tensor CausalLMImpl::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                 const at::Tensor& position_ids, KvCache* cache) {
  return lm_logits(hidden_states(input_ids, attention_mask, position_ids, cache));
}

void CausalLMImpl::init_weights() {
  torch::NoGradGuard no_grad;
  for (auto& item : named_parameters())
    if (!is_adapter_parameter(item.key())) init_parameter(item.key(), item.value());
}

void CausalLMImpl::load_hf_state_dict(const TensorMap& tensors, const std::string& source,
                                      const std::function<void(const at::Tensor&)>& copied) {
  const std::string scope = model_type();
  for (const auto& item : named_modules()) {
    if (auto* linear = item.value()->as<LinearImpl>(); linear && linear->merged()) {
      throw Error(scope, source + ": cannot load base weights into a model with merged LoRA (" +
                             item.key() + "); unmerge first");
    }
  }
  std::map<std::string, at::Tensor> expected;
  for (const auto& item : named_parameters()) {
    if (!is_adapter_parameter(item.key())) expected.emplace(item.key(), item.value());
  }
  // Validate everything before copying anything, so a bad file leaves the model untouched.
  std::map<std::string, std::pair<std::string, at::Tensor>> matched;  // name -> (key, tensor)
  std::vector<std::string> unexpected;
  for (const auto& [key, tensor] : tensors) {
    const std::string name = hf_parameter_name(key);
    if (name.empty()) continue;
    auto it = expected.find(name);
    if (it == expected.end()) {
      unexpected.push_back(key);
      continue;
    }
    if (matched.count(name)) {
      throw Error(scope, source + ": " + name + " is given twice (as " + matched[name].first +
                             " and " + key + ")");
    }
    if (!tensor.defined() || !at::isFloatingType(tensor.scalar_type())) {
      throw Error(scope, source + ": " + key + " must be a floating-point tensor");
    }
    if (tensor.sizes() != it->second.sizes()) {
      throw Error(scope, source + ": " + key + " has shape " + shape_string(tensor.sizes()) +
                             ", the model expects " + shape_string(it->second.sizes()));
    }
    matched.emplace(name, std::make_pair(key, tensor));
  }
  if (!unexpected.empty()) {
    throw Error(scope, source + ": unexpected key(s) " + list_some(unexpected));
  }
  std::vector<std::string> missing;
  for (const auto& entry : expected) {
    if (!matched.count(entry.first)) missing.push_back(entry.first);
  }
  if (!missing.empty()) throw Error(scope, source + ": missing key(s) " + list_some(missing));

  torch::NoGradGuard no_grad;
  for (auto& [name, parameter] : expected) {
    const at::Tensor& from = matched.at(name).second;
    parameter.copy_(from);
    if (copied) copied(from);
  }
}

TensorMap CausalLMImpl::hf_state_dict() const {
  TensorMap out;
  for (const auto& item : named_parameters()) {
    if (!is_adapter_parameter(item.key())) out.emplace(item.key(), item.value().detach());
  }
  return out;
}

at::Tensor next_token_log_probs(const at::Tensor& logits, const at::Tensor& input_ids) {
  if (logits.dim() != 3 || input_ids.dim() != 2 || logits.size(0) != input_ids.size(0) ||
      logits.size(1) != input_ids.size(1)) {
    throw Error("log_probs", "logits " + shape_string(logits.sizes()) + " do not match input_ids " +
                                 shape_string(input_ids.sizes()));
  }
  const int64_t T = input_ids.size(1);
  // float32 at least: bf16 log-softmax over 32k-50k entries loses ~3 significant digits.
  const at::ScalarType compute = logits.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor log_probs = at::log_softmax(logits.narrow(1, 0, T - 1), -1, compute);
  const at::Tensor targets = input_ids.narrow(1, 1, T - 1).to(at::kLong).unsqueeze(-1);
  return log_probs.gather(-1, targets).squeeze(-1);  // [B, T - 1]
}

at::Tensor sequence_log_probs(const at::Tensor& logits, const at::Tensor& input_ids,
                              const at::Tensor& target_mask) {
  if (target_mask.sizes() != input_ids.sizes()) {
    throw Error("log_probs", "target_mask " + shape_string(target_mask.sizes()) +
                                 " does not match input_ids " + shape_string(input_ids.sizes()));
  }
  const at::Tensor per_token = next_token_log_probs(logits, input_ids);  // [B, T - 1]
  const int64_t T = input_ids.size(1);
  const at::Tensor mask = target_mask.narrow(1, 1, T - 1).to(per_token.scalar_type());
  return (per_token * mask).sum(1);
}

}  // namespace tailor
