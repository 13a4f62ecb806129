#include "models/core/adapter_bank.h"

#include <cmath>
#include <set>

#include <ATen/CPUGeneratorImpl.h>

#include "common/error.h"

namespace tailor {

AdapterBank::AdapterBank(torch::nn::Module& model, const LoraConfig& config,
                         std::vector<std::string> names)
    : names_(std::move(names)), routing_(std::make_shared<AdapterRouting>()) {
  config.validate();
  if (names_.empty()) throw Error("lora", "an adapter bank needs at least one user");
  std::set<std::string> seen;
  for (const auto& name : names_) {
    if (name.empty()) throw Error("lora", "adapter bank: a user name is empty");
    if (!seen.insert(name).second)
      throw Error("lora", "adapter bank: user \"" + name + "\" is named twice");
  }
  const auto chosen = lora_target_layers(model, config.targets);
  for (const auto& [path, linear] : chosen) {
    if (linear->has_lora() || linear->has_adapter_bank())
      throw Error("lora", path + ": already has LoRA");
  }
  for (const auto& [path, linear] : chosen) {
    linear->add_adapter_bank(size(), config.rank, config.scaling(), config.dropout, routing_);
    paths_.push_back(path);
    layers_.push_back(linear);
  }
  freeze_non_lora_parameters(model);
}

void AdapterBank::init_user(const std::string& name, uint64_t seed) {
  const int64_t u = index_of(name);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::NoGradGuard no_grad;
  for (LinearImpl* layer : layers_) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(layer->in_features()));
    const at::Tensor a = at::empty({layer->lora_rank(), layer->in_features()}, at::kFloat)
                             .uniform_(-bound, bound, gen);
    layer->lora_bank_A[u].copy_(a);
    layer->lora_bank_B[u].zero_();
  }
}

int64_t AdapterBank::index_of(const std::string& name) const {
  for (size_t i = 0; i < names_.size(); ++i)
    if (names_[i] == name) return static_cast<int64_t>(i);
  std::string known;
  for (const auto& n : names_)
    known += (known.empty() ? "" : ", ") + n;
  throw Error("lora", "no adapter for user \"" + name + "\" (users: " + known + ")");
}

namespace {

at::Tensor checked_rows(const at::Tensor& rows, int64_t adapters) {
  if (rows.dim() != 1 || rows.scalar_type() != at::kLong)
    throw Error("lora", "adapter routing must be a 1-D int64 tensor of row indices");
  if (rows.numel() > 0 &&
      (rows.min().item<int64_t>() < -1 || rows.max().item<int64_t>() >= adapters))
    throw Error("lora",
                "adapter routing holds an index outside [-1, " + std::to_string(adapters) + ")");
  return rows;
}

}  // namespace

AdapterRoute::AdapterRoute(AdapterBank& bank, const std::vector<std::string>& row_users,
                           const at::Device& device)
    : bank_(bank), before_(*bank.routing_) {
  std::vector<int64_t> rows;
  rows.reserve(row_users.size());
  for (const auto& user : row_users)
    rows.push_back(user.empty() ? -1 : bank.index_of(user));
  bank_.routing_->rows = checked_rows(at::tensor(rows, at::kLong).to(device), bank.size());
  bank_.routing_->every_row = -1;
}

AdapterRoute::AdapterRoute(AdapterBank& bank, const at::Tensor& row_indices)
    : bank_(bank), before_(*bank.routing_) {
  bank_.routing_->rows = checked_rows(row_indices, bank.size());
  bank_.routing_->every_row = -1;
}

AdapterRoute::AdapterRoute(AdapterBank& bank, const std::string& user)
    : bank_(bank), before_(*bank.routing_) {
  const int64_t index = user.empty() ? -1 : bank.index_of(user);
  bank_.routing_->rows = at::Tensor();
  bank_.routing_->every_row = index;
}

AdapterRoute::~AdapterRoute() {
  *bank_.routing_ = before_;
}

at::Tensor AdapterRoute::rows() const {
  return bank_.routing_->rows;
}

TensorMap AdapterBank::user_adapter(const std::string& name) const {
  const int64_t u = index_of(name);
  TensorMap out;
  for (size_t i = 0; i < layers_.size(); ++i) {
    out[paths_[i] + ".lora_A.weight"] = layers_[i]->lora_bank_A[u].detach().clone();
    out[paths_[i] + ".lora_B.weight"] = layers_[i]->lora_bank_B[u].detach().clone();
  }
  return out;
}

}  // namespace tailor
