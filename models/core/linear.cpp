#include "models/core/linear.h"

#include <cmath>
#include <string>

#include <torch/nn/init.h>

#include "common/error.h"

namespace tailor {

LoraFactorImpl::LoraFactorImpl(int64_t rows, int64_t cols) {
  weight = register_parameter("weight", torch::empty({rows, cols}));
}

at::Tensor lora_A_initial(int64_t rank, int64_t in_features) {
  torch::NoGradGuard no_grad;
  // PEFT reset_lora_parameters: kaiming_uniform_(A, a=sqrt(5)) -> bound 1/sqrt(in).
  at::Tensor a = torch::empty({rank, in_features});
  torch::nn::init::kaiming_uniform_(a, std::sqrt(5.0));
  return a;
}

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, WeightLayout layout,
                       bool with_bias)
    : in_features_(in_features), out_features_(out_features), layout_(layout) {
  if (in_features <= 0 || out_features <= 0) {
    throw Error("linear", "features must be positive, got in " + std::to_string(in_features) +
                              ", out " + std::to_string(out_features));
  }
  auto shape = layout == WeightLayout::kConv1D ? std::vector<int64_t>{in_features, out_features}
                                               : std::vector<int64_t>{out_features, in_features};
  weight = register_parameter("weight", torch::empty(shape));
  if (with_bias) bias = register_parameter("bias", torch::zeros({out_features}));
}

at::Tensor LinearImpl::base_forward(const at::Tensor& x2d) const {
  // One GEMM (bias folded in with addmm) per call; Conv1D's [in, out] needs no transpose.
  const at::Tensor w = layout_ == WeightLayout::kConv1D ? weight : weight.t();
  return bias.defined() ? at::addmm(bias, x2d, w) : at::mm(x2d, w);
}

at::Tensor LinearImpl::forward(const at::Tensor& x) {
  if (x.size(-1) != in_features_) {
    throw Error("linear", "input has " + std::to_string(x.size(-1)) + " features, expected " +
                              std::to_string(in_features_));
  }
  auto out_shape = x.sizes().vec();
  out_shape.back() = out_features_;
  const at::Tensor x2d = x.reshape({-1, in_features_});
  at::Tensor y = base_forward(x2d);
  if (has_adapter_bank() && adapter_enabled_ && routing_->rows.defined())
    return bank_forward(x, y).view(out_shape);
  if (has_adapter_bank() && adapter_enabled_ && routing_->every_row >= 0) {
    // One adapter for the whole batch: PEFT's single-adapter forward with that user's factors.
    const int64_t u = routing_->every_row;
    const at::Tensor dropped =
        lora_dropout_ > 0.0 ? at::dropout(x2d, lora_dropout_, is_training()) : x2d;
    const at::Tensor down = at::mm(dropped, lora_bank_A[u].t());  // [N, r]
    y = at::addmm(y, down, lora_bank_B[u].t(), /*beta=*/1, /*alpha=*/lora_scaling_);
    return y.view(out_shape);
  }
  if (has_lora() && adapter_enabled_ && !merged_) {
    // y += (dropout(x) A^T) B^T * scaling  (PEFT lora.Linear.forward)
    const at::Tensor dropped =
        lora_dropout_ > 0.0 ? at::dropout(x2d, lora_dropout_, is_training()) : x2d;
    const at::Tensor down = at::mm(dropped, lora_A->weight.t());  // [N, r]
    y = at::addmm(y, down, lora_B->weight.t(), /*beta=*/1, /*alpha=*/lora_scaling_);
  }
  return y.view(out_shape);
}

at::Tensor LinearImpl::bank_forward(const at::Tensor& x, const at::Tensor& y2d) const {
  const at::Tensor& rows = routing_->rows;
  const int64_t B = rows.size(0);
  if (x.dim() < 2 || x.size(0) != B) {
    throw Error("lora", "adapter routing names " + std::to_string(B) + " rows but the input has " +
                            (x.dim() < 2 ? std::string("no batch dimension")
                                         : std::to_string(x.size(0)) + " rows"));
  }
  const at::Tensor x3 = x.reshape({B, -1, in_features_});
  const at::Tensor dropped =
      lora_dropout_ > 0.0 ? at::dropout(x3, lora_dropout_, is_training()) : x3;
  // Each row's own factors (a gather, whose backward adds into that user's slice), then two
  // batched products: [B, T, in] -> [B, T, r] -> [B, T, out].
  const at::Tensor users = rows.clamp_min(0);
  const at::Tensor A = lora_bank_A.index_select(0, users);   // [B, r, in]
  const at::Tensor Bf = lora_bank_B.index_select(0, users);  // [B, out, r]
  const at::Tensor up = at::bmm(at::bmm(dropped, A.transpose(1, 2)), Bf.transpose(1, 2));
  const at::Tensor keep = rows.ge(0).to(up.scalar_type()).mul(lora_scaling_).view({B, 1, 1});
  return y2d.view({B, -1, out_features_}) + up * keep;
}

void LinearImpl::add_adapter_bank(int64_t count, int64_t rank, double scaling, double dropout,
                                  std::shared_ptr<AdapterRouting> routing) {
  if (has_lora() || has_adapter_bank())
    throw Error("lora", "this layer already has LoRA; a layer has one adapter or one bank");
  if (count <= 0 || rank <= 0)
    throw Error("lora", "an adapter bank needs count > 0 and rank > 0, got count " +
                            std::to_string(count) + ", rank " + std::to_string(rank));
  if (!(dropout >= 0.0 && dropout < 1.0))
    throw Error("lora", "dropout must be in [0, 1), got " + std::to_string(dropout));
  if (!routing) throw Error("lora", "an adapter bank needs a routing object");
  const auto options = weight.options();
  std::vector<at::Tensor> a;
  for (int64_t u = 0; u < count; ++u)
    a.push_back(lora_A_initial(rank, in_features_));
  {
    torch::NoGradGuard no_grad;
    lora_bank_A = register_parameter("lora_bank_A", at::stack(a).to(options));
    lora_bank_B =
        register_parameter("lora_bank_B", torch::zeros({count, out_features_, rank}, options));
  }
  weight.set_requires_grad(false);
  if (bias.defined()) bias.set_requires_grad(false);
  lora_rank_ = rank;
  lora_scaling_ = scaling;
  lora_dropout_ = dropout;
  adapter_enabled_ = true;
  routing_ = std::move(routing);
}

void LinearImpl::add_lora(int64_t rank, double scaling, double dropout) {
  if (has_lora()) throw Error("lora", "LoRA is already applied to this layer");
  if (has_adapter_bank()) throw Error("lora", "this layer has an adapter bank");
  if (rank <= 0) throw Error("lora", "rank must be positive, got " + std::to_string(rank));
  if (!(dropout >= 0.0 && dropout < 1.0)) {
    throw Error("lora", "dropout must be in [0, 1), got " + std::to_string(dropout));
  }
  const auto options = weight.options();
  lora_A = register_module("lora_A", LoraFactor(rank, in_features_));
  lora_B = register_module("lora_B", LoraFactor(out_features_, rank));
  {
    torch::NoGradGuard no_grad;
    lora_A->weight.set_data(lora_A_initial(rank, in_features_).to(options));  // B = 0
    lora_B->weight.set_data(torch::zeros({out_features_, rank}, options));
  }
  weight.set_requires_grad(false);
  if (bias.defined()) bias.set_requires_grad(false);
  lora_rank_ = rank;
  lora_scaling_ = scaling;
  lora_dropout_ = dropout;
  merged_ = false;
  adapter_enabled_ = true;
}

namespace {

// float64 stays float64; float32/bfloat16/float16 weights get a float32 delta.
at::ScalarType compute_type(const at::Tensor& weight) {
  return weight.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// (B A)^T * s (Conv1D) or B A * s (Linear) in `dtype`: the delta in the base weight's layout.
at::Tensor scaled_lora_delta(const at::Tensor& lora_A, const at::Tensor& lora_B, double scaling,
                             WeightLayout layout, at::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  at::Tensor delta = at::mm(lora_B.to(dtype), lora_A.to(dtype));  // [out, in]
  delta.mul_(scaling);
  return layout == WeightLayout::kConv1D ? delta.t() : delta;
}

}  // namespace

at::Tensor lora_merged_weight(const at::Tensor& weight, const at::Tensor& lora_A,
                              const at::Tensor& lora_B, double scaling, WeightLayout layout) {
  torch::NoGradGuard no_grad;
  const auto compute = compute_type(weight);
  return (weight.to(compute) + scaled_lora_delta(lora_A, lora_B, scaling, layout, compute))
      .to(weight.scalar_type());
}

at::Tensor LinearImpl::scaled_delta(at::ScalarType dtype) const {
  if (!has_lora()) throw Error("lora", "LoRA delta requested on a layer without LoRA");
  return scaled_lora_delta(lora_A->weight, lora_B->weight, lora_scaling_, layout_, dtype);
}

at::Tensor LinearImpl::lora_delta() const {
  return scaled_delta(compute_type(weight)).to(weight.scalar_type()).contiguous();
}

void LinearImpl::merge() {
  if (!has_lora()) throw Error("lora", "merge() on a layer without LoRA");
  if (!adapter_enabled_) throw Error("lora", "merge() while adapters are disabled");
  if (merged_) return;
  torch::NoGradGuard no_grad;
  weight.copy_(lora_merged_weight(weight, lora_A->weight, lora_B->weight, lora_scaling_, layout_));
  merged_ = true;
}

void LinearImpl::unmerge() {
  if (!has_lora()) throw Error("lora", "unmerge() on a layer without LoRA");
  if (!merged_) return;
  torch::NoGradGuard no_grad;
  const auto compute = compute_type(weight);
  weight.copy_(weight.to(compute) - scaled_delta(compute));
  merged_ = false;
}

void LinearImpl::set_adapter_enabled(bool enabled) {
  if (!enabled && merged_) unmerge();
  adapter_enabled_ = enabled;
}

}  // namespace tailor
