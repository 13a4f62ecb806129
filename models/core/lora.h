// LoRA on any model built from tailor::Linear layers (GPT-2 now, Mistral later), with targets
// named as Hugging Face/PEFT name modules.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/ordered_dict.h>

namespace tailor {

struct LoraConfig {
  int64_t rank = 8;
  double alpha = 16;
  double dropout = 0;
  bool rslora = false;  // scaling alpha / sqrt(r) (Kalajdzievski 2023) instead of alpha / r
  // Module names as PEFT's target_modules: a name matches a module path equal to it or ending in
  // "." + name, e.g. "c_attn", "c_proj" (both attn.c_proj and mlp.c_proj), "attn.c_proj".
  std::vector<std::string> targets;

  double scaling() const;
  void validate() const;  // throws Error("lora", ...) naming the bad field
};

class LinearImpl;

// The tailor::Linear layers whose path matches a target (see LoraConfig::targets), in module
// order with their paths. A target matching nothing is an error listing the available names.
std::vector<std::pair<std::string, LinearImpl*>> lora_target_layers(
    const torch::nn::Module& model, const std::vector<std::string>& targets);

// Wraps every tailor::Linear whose path matches a target, then freezes all non-LoRA parameters
// (PEFT with bias "none"). Returns the wrapped module paths, e.g. "transformer.h.0.attn.c_attn",
// in module order. A target matching nothing is an error listing the available module names.
std::vector<std::string> apply_lora(torch::nn::Module& model, const LoraConfig& config);

bool has_lora(const torch::nn::Module& model);
// True for the name of a LoRA factor parameter ("...lora_A.weight" / "...lora_B.weight").
bool is_lora_parameter(const std::string& name);
// True for an adapter bank's stacked factors ("...lora_bank_A" / "...lora_bank_B", adapter_bank.h).
bool is_adapter_bank_parameter(const std::string& name);
// True when any LoRA layer is currently merged into its base weight.
bool lora_merged(const torch::nn::Module& model);
// Paths of the modules carrying LoRA.
std::vector<std::string> lora_module_paths(const torch::nn::Module& model);

// Adapters off: every LoRA layer computes its plain base (the DPO reference policy).
void set_adapters_enabled(torch::nn::Module& model, bool enabled);
void merge_lora(torch::nn::Module& model);
void unmerge_lora(torch::nn::Module& model);

// The LoRA parameters (`...lora_A.weight` [r, in], `...lora_B.weight` [out, r]) in module order.
torch::OrderedDict<std::string, at::Tensor> lora_parameters(const torch::nn::Module& model);

// requires_grad false on every parameter that is not a LoRA factor (or bank), true on those.
void freeze_non_lora_parameters(torch::nn::Module& model);

}  // namespace tailor
