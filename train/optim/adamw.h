// AdamW with decoupled weight decay (Loshchilov & Hutter 2019, "Decoupled Weight Decay
// Regularization", Algorithm 2), computed exactly as PyTorch's torch.optim.AdamW
// (_single_tensor_adamw): per step t (1-based) with gradient g,
//   p  <- p * (1 - lr * wd)                       (decoupled decay, before the Adam update)
//   m  <- b1 m + (1 - b1) g
//   v  <- b2 v + (1 - b2) g^2
//   p  <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
//
// Mixed precision: a bfloat16/float16 parameter gets an fp32 master copy; moments are fp32; the
// update is applied to the master and rounded (round-to-nearest-even) back into the parameter.
// float32/float64 parameters are updated in place with moments of their own dtype.
//
// All state is explicit and named so checkpoints are plain safetensors and ZeRO can shard it:
//   "<param>.exp_avg", "<param>.exp_avg_sq", "<param>.master" (low-precision params only),
//   "step" (int64 scalar, the number of steps taken).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/Tensor.h>

#include "models/core/tensor_map.h"

namespace tailor {

struct AdamWConfig {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // applied only to parameters registered with decay = true
};

// The usual rule (nanoGPT, HF Trainer for GPT-2): matrices and embeddings decay; 1-D tensors
// (biases, LayerNorm gains/shifts) do not.
bool decays_by_default(const at::Tensor& param);

// One registered parameter and its optimizer state.
struct AdamWParam {
  std::string name;
  at::Tensor param;  // the model's tensor (its .grad() is read in step())
  bool decay = true;
  at::Tensor master;      // fp32 copy for bf16/fp16 params; undefined otherwise
  at::Tensor exp_avg;     // m, dtype of the working weights (master if any, else param)
  at::Tensor exp_avg_sq;  // v, same
  // The tensor the update is applied to: the master copy if there is one, else the param.
  const at::Tensor& weights() const { return master.defined() ? master : param; }
};

// Reusable buffers for adamw_update_ (grown on demand, at most one chunk for contiguous
// tensors), so a step allocates nothing.
struct AdamWScratch {
  at::Tensor denom;  // sqrt(v) + eps
  at::Tensor grad;   // grad converted to the weights' dtype
};

// One AdamW update of one tensor (any shape, e.g. a flat ZeRO shard), in place.
// `weights`, `exp_avg`, `exp_avg_sq` share dtype and shape; `grad` has the same shape, any
// floating dtype (bf16 grads of a master-weight parameter are widened exactly). `step` is the
// 1-based number of this step. When `rounded_copy` is defined (the bf16/fp16 parameter of a
// master copy), the new weights are also written into it, rounded to nearest even.
// Contiguous tensors are processed in cache-sized chunks (see adamw.cpp); the math is torch
// ops, so any device works.
void adamw_update_(at::Tensor& weights, const at::Tensor& grad, at::Tensor& exp_avg,
                   at::Tensor& exp_avg_sq, int64_t step, double lr, double weight_decay,
                   const AdamWConfig& config, const at::Tensor& rounded_copy = at::Tensor(),
                   AdamWScratch* scratch = nullptr);

class AdamW {
 public:
  explicit AdamW(AdamWConfig config = {});

  // Registers a parameter under a unique name (HF name). Moments start at zero; the master copy
  // (bf16/fp16 params) starts as the parameter's current value.
  void add_param(const std::string& name, const at::Tensor& param, bool decay);

  // One optimizer step with learning rate `lr`. Parameters whose grad is undefined are skipped
  // (as PyTorch does); the step count, and so bias correction, is global, as in DeepSpeed.
  void step(double lr);

  // Drops gradients (set_to_none = true, PyTorch 2's default) or zeroes them in place.
  void zero_grad(bool set_to_none = true);

  int64_t step_count() const { return step_; }
  const AdamWConfig& config() const { return config_; }
  const std::vector<AdamWParam>& params() const { return params_; }

  // Named state, see the header comment. The tensors alias the live state (no copy): save or
  // clone them before the next step().
  TensorMap export_state() const;

  // Copies a state produced by export_state() into this optimizer, bit-exactly. Every registered
  // parameter must have its entries with matching shapes; unknown keys are an error.
  // Parameters themselves are not touched (they come from the model checkpoint).
  void import_state(const TensorMap& state);

 private:
  AdamWConfig config_;
  std::vector<AdamWParam> params_;
  int64_t step_ = 0;
  AdamWScratch scratch_;
};

}  // namespace tailor
