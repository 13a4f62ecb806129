// Per-user LoRA adapters on one frozen base (issue 11, per-user DPO): every targeted layer holds
// a bank of N adapters (LinearImpl::add_adapter_bank), one per named user, and each batch row is
// routed through its own user's adapter, or through none (the reference policy is the base with
// adapters off, so no second copy of the model exists). N users train in one pass over the base;
// AdamW acts element by element, so each user's slice has its own optimizer state.
//
//   AdapterBank bank(*model, lora_config, {"alice", "bob"});
//   bank.route({"alice", "bob", "", "alice"}, device);   // rows 0..3; "" = base only
//   auto logits = model->forward(ids);                   // ids [4, T]
//   bank.clear_route();                                  // every row: base only
//   TensorMap peft = bank.user_adapter("bob");           // "<module>.lora_A.weight", ...
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "models/core/linear.h"
#include "models/core/lora.h"
#include "models/core/tensor_map.h"

namespace tailor {

class AdapterBank {
 public:
  // Adds a bank of names.size() adapters (config's rank, scaling, dropout) to every Linear that
  // matches config.targets, and freezes every other parameter. User names must be unique and
  // non-empty. Adapter u's lora_A is drawn like apply_lora's, for u = 0, 1, ... in turn.
  AdapterBank(torch::nn::Module& model, const LoraConfig& config, std::vector<std::string> names);

  const std::vector<std::string>& names() const { return names_; }
  const std::vector<std::string>& module_paths() const { return paths_; }
  int64_t size() const { return static_cast<int64_t>(names_.size()); }
  // Redraws user `name`'s adapter from its own generator seeded with `seed`: lora_A of every
  // layer (in module order) uniform in +-1/sqrt(in) as PEFT's kaiming-uniform init, drawn in
  // float32, lora_B zero. A user's start then depends on `seed` alone, not on which other users
  // share the bank (the DPO stage seeds it from the recipe seed and the user's name).
  void init_user(const std::string& name, uint64_t seed);

  // Index of a user; Error("lora", ...) naming the known users otherwise.
  int64_t index_of(const std::string& name) const;

  // Row b of the next forwards goes through adapter users[b] ("" = none), on `device`.
  void route(const std::vector<std::string>& users, const at::Device& device);
  // The same with adapter indices ([B] int64, -1 = none), already on the model's device.
  void route_indices(const at::Tensor& rows);
  // Every row of every later batch (any size) through user `name`'s adapter ("" = none), e.g.
  // to generate with it; a route() or clear_route() ends it.
  void route_all(const std::string& name);
  void clear_route();  // every row through the base alone
  // The per-row adapter indices of the last route()/route_indices() (undefined after
  // route_all or clear_route).
  at::Tensor routed_rows() const;

  // User `name`'s adapter as PEFT names it: "<module path>.lora_A.weight" [r, in] and
  // ".lora_B.weight" [out, r] (copies, detached).
  TensorMap user_adapter(const std::string& name) const;

 private:
  std::vector<std::string> names_;
  std::vector<std::string> paths_;
  std::vector<LinearImpl*> layers_;
  std::shared_ptr<AdapterRouting> routing_;
};

}  // namespace tailor
