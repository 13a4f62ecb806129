// A linear layer in either Hugging Face weight layout, with an optional LoRA adapter.
//
//   Conv1D layout (GPT-2's transformers.pytorch_utils.Conv1D): weight [in, out], y = x W + b
//   Linear layout (torch.nn.Linear, Mistral):                   weight [out, in], y = x W^T + b
//
// LoRA (Hu et al. 2021; PEFT's lora.Linear): y = base(x) + B(A(dropout(x))) * scaling with
// A = lora_A.weight [r, in] and B = lora_B.weight [out, r] in PEFT's layout whatever the base
// layout, so parameter names read `<module>.lora_A.weight` exactly as in a PEFT adapter file.
#pragma once

#include <cstdint>
#include <memory>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace tailor {

enum class WeightLayout {
  kConv1D,  // weight [in, out]
  kLinear,  // weight [out, in]
};

// One LoRA factor, held as `weight` so that names end in `lora_A.weight` / `lora_B.weight`.
class LoraFactorImpl : public torch::nn::Module {
 public:
  LoraFactorImpl(int64_t rows, int64_t cols);
  at::Tensor weight;  // [rows, cols]
};
TORCH_MODULE(LoraFactor);

// PEFT's initial lora_A [rank, in]: kaiming-uniform with a = sqrt(5), drawn in float32 on the CPU
// from torch's default generator (so a seed gives the same A whatever the model's dtype).
at::Tensor lora_A_initial(int64_t rank, int64_t in_features);

// Which adapter of a bank (LinearImpl::add_adapter_bank) each batch row goes through: rows[b] in
// [0, N) is adapter rows[b], -1 is the plain base for that row (e.g. the DPO reference policy).
// One object is shared by every layer of a bank and set before each forward (AdapterBank).
struct AdapterRouting {
  at::Tensor rows;  // [B] int64 on the model's device; undefined: see every_row
  // With rows undefined: every row of any batch goes through adapter every_row (>= 0), e.g. while
  // generating, when finished rows leave the batch; -1 = every row runs the plain base.
  int64_t every_row = -1;
};

class LinearImpl : public torch::nn::Module {
 public:
  // Weights start uninitialised (torch::empty): the owning model initialises or loads them.
  LinearImpl(int64_t in_features, int64_t out_features, WeightLayout layout, bool bias);

  // x [..., in] -> [..., out], in the dtype of the weight.
  at::Tensor forward(const at::Tensor& x);

  // Adds lora_A [rank, in] (kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in)),
  // drawn from torch's default generator) and lora_B [out, rank] (zeros), as PEFT initialises
  // them, and freezes the base weight and bias. Throws if LoRA is already present.
  void add_lora(int64_t rank, double scaling, double dropout);
  bool has_lora() const { return static_cast<bool>(lora_A); }

  // Folds the adapter into the base weight (Conv1D: W += (B A)^T * scaling; Linear:
  // W += B A * scaling), after which forward is the plain base. The delta is computed in at least
  // float32. merge() needs the adapter enabled; both are no-ops when already in that state.
  void merge();
  void unmerge();
  bool merged() const { return merged_; }

  // When disabled, forward is the plain base layer (PEFT's disable_adapter_layers). Disabling a
  // merged layer unmerges it first, as PEFT does.
  void set_adapter_enabled(bool enabled);
  bool adapter_enabled() const { return adapter_enabled_; }

  // The adapter's contribution in the base weight's layout and dtype: (B A)^T * s or B A * s.
  at::Tensor lora_delta() const;

  // A bank of `count` LoRA adapters of one rank, trained side by side (one per user, like the
  // batched multi-adapter kernels of S-LoRA/Punica): lora_bank_A [count, rank, in], each slice
  // drawn as add_lora draws lora_A, in order; lora_bank_B [count, out, rank] zeros. Row b of a
  // batch adds B_u A_u dropout(x_b) * scaling with u = routing->rows[b] (nothing when -1 or when
  // rows is undefined). Freezes the base; a layer has a single adapter or a bank, not both.
  void add_adapter_bank(int64_t count, int64_t rank, double scaling, double dropout,
                        std::shared_ptr<AdapterRouting> routing);
  bool has_adapter_bank() const { return lora_bank_A.defined(); }

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  int64_t lora_rank() const { return lora_rank_; }
  double lora_scaling() const { return lora_scaling_; }
  double lora_dropout() const { return lora_dropout_; }
  WeightLayout layout() const { return layout_; }

  at::Tensor weight;  // [in, out] (kConv1D) or [out, in] (kLinear)
  at::Tensor bias;    // [out], undefined without bias
  LoraFactor lora_A{nullptr};
  LoraFactor lora_B{nullptr};
  at::Tensor lora_bank_A;  // [N, r, in], with add_adapter_bank
  at::Tensor lora_bank_B;  // [N, out, r]

 private:
  at::Tensor base_forward(const at::Tensor& x2d) const;  // [N, in] -> [N, out]
  at::Tensor scaled_delta(at::ScalarType dtype) const;   // base layout, in `dtype`
  at::Tensor bank_forward(const at::Tensor& x, const at::Tensor& y2d) const;

  int64_t in_features_;
  int64_t out_features_;
  WeightLayout layout_;
  int64_t lora_rank_ = 0;
  double lora_scaling_ = 0.0;
  double lora_dropout_ = 0.0;
  bool merged_ = false;
  bool adapter_enabled_ = true;
  std::shared_ptr<AdapterRouting> routing_;
};
TORCH_MODULE(Linear);

// What LinearImpl::merge() leaves in the weight, for exporters that merge one module at a time
// without a model: weight + (B A)^T * scaling (Conv1D) or B A * scaling (Linear), computed in at
// least float32 and rounded to the weight's dtype. lora_A [r, in], lora_B [out, r].
at::Tensor lora_merged_weight(const at::Tensor& weight, const at::Tensor& lora_A,
                              const at::Tensor& lora_B, double scaling, WeightLayout layout);

}  // namespace tailor
