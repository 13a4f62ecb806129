// Calls a model makes around each group of its parameters during forward, so that a wrapper can
// materialize parameters just in time (ZeRO stage 3 gathers a group's shards on enter and frees
// them on exit) without the model knowing whether or how it is sharded.
//
// A model with hooks documents its groups (CausalLMImpl::hook_groups()) and, in forward, calls
// enter(g, x) before the first use of group g's parameters with the activation flowing in, and
// exit(g, y) after their last forward use with the activation flowing out. A hook may register
// autograd hooks on those activations (to act again during backward), but must not change them.
#pragma once

#include <ATen/Tensor.h>

namespace tailor {

class ForwardHooks {
 public:
  virtual ~ForwardHooks() = default;
  virtual void enter(int group, const at::Tensor& activation) = 0;
  virtual void exit(int group, const at::Tensor& activation) = 0;
};

}  // namespace tailor
