#include "models/core/lora.h"

#include <cmath>
#include <set>
#include <sstream>

#include "common/error.h"
#include "models/core/linear.h"

namespace tailor {
namespace {

const char* kScope = "lora";

bool path_matches(const std::string& path, const std::string& target) {
  if (path == target) return true;
  return path.size() > target.size() &&
         path.compare(path.size() - target.size(), target.size(), target) == 0 &&
         path[path.size() - target.size() - 1] == '.';
}

// Every tailor::Linear in the model with its path, in module order.
std::vector<std::pair<std::string, LinearImpl*>> linear_layers(const torch::nn::Module& model) {
  std::vector<std::pair<std::string, LinearImpl*>> out;
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    if (auto* linear = item.value()->as<LinearImpl>()) out.emplace_back(item.key(), linear);
  }
  return out;
}

bool is_lora_name(const std::string& name) {
  return name.find("lora_A.") != std::string::npos || name.find("lora_B.") != std::string::npos;
}

}  // namespace

double LoraConfig::scaling() const {
  return rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / static_cast<double>(rank);
}

void LoraConfig::validate() const {
  if (rank <= 0) throw Error(kScope, "rank must be positive, got " + std::to_string(rank));
  if (!std::isfinite(alpha)) throw Error(kScope, "alpha must be a finite number");
  if (!(dropout >= 0.0 && dropout < 1.0)) {
    std::ostringstream os;
    os << "dropout must be in [0, 1), got " << dropout;
    throw Error(kScope, os.str());
  }
  if (targets.empty()) throw Error(kScope, "targets must name at least one module");
}

std::vector<std::string> apply_lora(torch::nn::Module& model, const LoraConfig& config) {
  config.validate();
  std::vector<std::string> wrapped;
  const auto chosen = lora_target_layers(model, config.targets);
  for (const auto& [path, linear] : chosen) {
    if (linear->has_lora()) throw Error(kScope, path + ": LoRA is already applied");
  }
  for (const auto& [path, linear] : chosen) {
    linear->add_lora(config.rank, config.scaling(), config.dropout);
    wrapped.push_back(path);
  }
  freeze_non_lora_parameters(model);
  return wrapped;
}

std::vector<std::pair<std::string, LinearImpl*>> lora_target_layers(
    const torch::nn::Module& model, const std::vector<std::string>& targets) {
  const auto layers = linear_layers(model);
  std::set<std::string> unmatched(targets.begin(), targets.end());
  std::vector<std::pair<std::string, LinearImpl*>> chosen;
  for (const auto& [path, linear] : layers) {
    bool hit = false;
    for (const auto& target : targets) {
      if (path_matches(path, target)) {
        unmatched.erase(target);
        hit = true;
      }
    }
    if (hit) chosen.emplace_back(path, linear);
  }
  if (!unmatched.empty()) {
    // Name the modules a user can target: last components and parent.last suffixes.
    std::set<std::string> available;
    for (const auto& [path, linear] : layers) {
      const size_t last = path.rfind('.');
      available.insert(last == std::string::npos ? path : path.substr(last + 1));
      const size_t parent =
          last == std::string::npos ? std::string::npos : path.rfind('.', last - 1);
      if (last != std::string::npos) {
        available.insert(parent == std::string::npos ? path : path.substr(parent + 1));
      }
    }
    std::string names, missing;
    for (const auto& name : available)
      names += (names.empty() ? "" : ", ") + name;
    for (const auto& name : unmatched)
      missing += (missing.empty() ? "" : ", ") + name;
    throw Error(kScope,
                "target module(s) " + missing + " match no layer (available: " + names + ")");
  }
  return chosen;
}

bool is_adapter_bank_parameter(const std::string& name) {
  return name.find("lora_bank_A") != std::string::npos ||
         name.find("lora_bank_B") != std::string::npos;
}

bool is_lora_parameter(const std::string& name) {
  return name.find(".lora_A.") != std::string::npos || name.find(".lora_B.") != std::string::npos;
}

bool has_lora(const torch::nn::Module& model) {
  return !lora_module_paths(model).empty();
}

bool lora_merged(const torch::nn::Module& model) {
  for (const auto& [path, linear] : linear_layers(model)) {
    if (linear->has_lora() && linear->merged()) return true;
  }
  return false;
}

std::vector<std::string> lora_module_paths(const torch::nn::Module& model) {
  std::vector<std::string> paths;
  for (const auto& [path, linear] : linear_layers(model)) {
    if (linear->has_lora()) paths.push_back(path);
  }
  return paths;
}

void set_adapters_enabled(torch::nn::Module& model, bool enabled) {
  for (const auto& [path, linear] : linear_layers(model)) {
    if (linear->has_lora() || linear->has_adapter_bank()) linear->set_adapter_enabled(enabled);
  }
}

void merge_lora(torch::nn::Module& model) {
  for (const auto& [path, linear] : linear_layers(model)) {
    if (linear->has_lora()) linear->merge();
  }
}

void unmerge_lora(torch::nn::Module& model) {
  for (const auto& [path, linear] : linear_layers(model)) {
    if (linear->has_lora()) linear->unmerge();
  }
}

torch::OrderedDict<std::string, at::Tensor> lora_parameters(const torch::nn::Module& model) {
  torch::OrderedDict<std::string, at::Tensor> out;
  for (const auto& item : model.named_parameters()) {
    if (is_lora_name(item.key())) out.insert(item.key(), item.value());
  }
  return out;
}

void freeze_non_lora_parameters(torch::nn::Module& model) {
  for (auto& item : model.named_parameters()) {
    item.value().set_requires_grad(is_lora_name(item.key()) ||
                                   is_adapter_bank_parameter(item.key()));
  }
}

}  // namespace tailor
