// Per-user LoRA adapters on one frozen base (issue 11, per-user DPO): every targeted layer holds
// a bank of N adapters (LinearImpl::add_adapter_bank), one per named user, and each batch row is
// routed through its own user's adapter, or through none (the reference policy is the base with
// adapters off, so no second copy of the model exists). N users train in one pass over the base;
// AdamW acts element by element, so each user's slice has its own optimizer state.
//
//   AdapterBank bank(*model, lora_config, {"alice", "bob"});
//   {
//     AdapterRoute route(bank, {"alice", "bob", "", "alice"}, device);  // rows 0..3; "" = base
//     auto logits = model->forward(ids);                                // ids [4, T]
//   }                                                  // the route ends: every row, base only
//   TensorMap peft = bank.user_adapter("bob");        // "<module>.lora_A.weight", ...
//
// Routing is scoped (AdapterRoute below): outside a route every row runs the base alone, so the
// reference pass cannot see an adapter by mistake, even when an exception left the scope.
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

  // User `name`'s adapter as PEFT names it: "<module path>.lora_A.weight" [r, in] and
  // ".lora_B.weight" [out, r] (copies, detached).
  TensorMap user_adapter(const std::string& name) const;

 private:
  friend class AdapterRoute;
  std::vector<std::string> names_;
  std::vector<std::string> paths_;
  std::vector<LinearImpl*> layers_;
  std::shared_ptr<AdapterRouting> routing_;
};

// Rows through adapters for as long as the route lives; when it ends, the bank routes as it did
// before it began (every row through the base alone, outside any route). Routes nest: the
// vocabulary projection routes the rows of one chunk of positions inside the policy's route.
class AdapterRoute {
 public:
  // Row b of the next forwards through adapter row_users[b] ("" = none), on `device`.
  AdapterRoute(AdapterBank& bank, const std::vector<std::string>& row_users,
               const at::Device& device);
  // The same with adapter indices ([B] int64, -1 = none), already on the model's device.
  AdapterRoute(AdapterBank& bank, const at::Tensor& row_indices);
  // Every row of every batch (any size) through user `user`'s adapter ("" = none), e.g. to
  // generate with it.
  AdapterRoute(AdapterBank& bank, const std::string& user);
  ~AdapterRoute();
  AdapterRoute(const AdapterRoute&) = delete;
  AdapterRoute& operator=(const AdapterRoute&) = delete;

  // The per-row adapter indices of a per-row route (undefined for a route of every row).
  at::Tensor rows() const;

 private:
  AdapterBank& bank_;
  AdapterRouting before_;
};

}  // namespace tailor
