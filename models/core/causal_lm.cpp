#include "models/core/causal_lm.h"

#include "common/error.h"
#include "common/shape_string.h"

#include <nlohmann/json.hpp>

namespace tailor {

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
