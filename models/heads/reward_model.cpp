#include "models/heads/reward_model.h"

#include "common/error.h"
#include "common/shape_string.h"

namespace tailor {
namespace {

const char* kRewardModelScope = "reward_model";

}  // namespace

RewardModelImpl::RewardModelImpl(CausalLM backbone_model, int64_t num_labels)
    : backbone(std::move(backbone_model)) {
  if (!backbone) throw Error(kRewardModelScope, "the backbone is null");
  if (num_labels < 1) {
    throw Error(kRewardModelScope,
                "num_labels must be at least 1, got " + std::to_string(num_labels));
  }
  const auto [name, base] = backbone->base_model();
  register_module(name, base);
  const int64_t C = backbone->hidden_size();
  score = register_module("score",
                          torch::nn::Linear(torch::nn::LinearOptions(C, num_labels).bias(false)));
  const at::Tensor wte = backbone->token_embedding_weight();
  score->to(wte.device(), wte.scalar_type());
  init_head();
  if (!backbone->is_training()) Module::train(false);
}

int64_t RewardModelImpl::num_labels() const {
  return score->weight.size(0);
}

void RewardModelImpl::init_head(double std) {
  torch::NoGradGuard no_grad;
  score->weight.normal_(0.0, std);
}

void RewardModelImpl::init_head() {
  init_head(backbone->initializer_range());
}

void RewardModelImpl::train(bool on) {
  Module::train(on);
  backbone->train(on);
}

at::Tensor RewardModelImpl::pooled(const at::Tensor& input_ids, const at::Tensor& attention_mask) {
  const at::Tensor hidden = backbone->hidden_states(input_ids, attention_mask);  // [B, T, C]
  const int64_t B = hidden.size(0), T = hidden.size(1), C = hidden.size(2);
  at::Tensor last;  // [B] index of each row's last real token
  if (attention_mask.defined()) {
    const at::Tensor real = attention_mask.ne(0);  // [B, T]
    const at::Tensor positions = at::arange(T, attention_mask.options().dtype(at::kLong));
    last = (positions * real.to(at::kLong)).argmax(1);  // the rightmost real token (as HF >= 4.48)
    // Right padding means every row is 1..1 0..0: then the real count equals last + 1. Rows
    // without real tokens or with holes / left padding break this, and GPT-2's default
    // position ids would then differ from an unpadded run.
    const at::Tensor count = real.sum(1);
    if (!count.eq(last + 1).logical_and(count.gt(0)).all().item<bool>()) {
      throw Error(kRewardModelScope,
                  "attention_mask " + shape_string(attention_mask.sizes()) +
                      ": every row needs at least one real token and right padding "
                      "(1s then 0s)");
    }
  } else {
    last = at::full({B}, T - 1, hidden.options().dtype(at::kLong));
  }
  return hidden.gather(1, last.view({B, 1, 1}).expand({B, 1, C})).squeeze(1);  // [B, C]
}

at::Tensor RewardModelImpl::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask) {
  return score(pooled(input_ids, attention_mask));  // [B, K]
}

std::vector<std::string> apply_reward_lora(RewardModel& model, const LoraConfig& config) {
  auto wrapped = apply_lora(*model, config);
  model->score->weight.set_requires_grad(true);
  return wrapped;
}

}  // namespace tailor
