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

void AdapterBank::route(const std::vector<std::string>& users, const at::Device& device) {
  std::vector<int64_t> rows;
  rows.reserve(users.size());
  for (const auto& user : users)
    rows.push_back(user.empty() ? -1 : index_of(user));
  route_indices(at::tensor(rows, at::kLong).to(device));
}

void AdapterBank::route_indices(const at::Tensor& rows) {
  if (rows.dim() != 1 || rows.scalar_type() != at::kLong)
    throw Error("lora", "adapter routing must be a 1-D int64 tensor of row indices");
  if (rows.numel() > 0 && (rows.min().item<int64_t>() < -1 || rows.max().item<int64_t>() >= size()))
    throw Error("lora",
                "adapter routing holds an index outside [-1, " + std::to_string(size()) + ")");
  routing_->rows = rows;
  routing_->every_row = -1;
}

void AdapterBank::route_all(const std::string& name) {
  routing_->rows = at::Tensor();
  routing_->every_row = name.empty() ? -1 : index_of(name);
}

void AdapterBank::clear_route() {
  routing_->rows = at::Tensor();
  routing_->every_row = -1;
}

at::Tensor AdapterBank::routed_rows() const {
  return routing_->rows;
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
