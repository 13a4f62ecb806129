#include "train/checkpoint/sharded_export.h"

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/shape_string.h"
#include "models/core/linear.h"
#include "models/core/lora.h"
#include "models/io/hf_checkpoint.h"
#include "models/io/peft.h"
#include "models/io/pretrained.h"
#include "models/io/safetensors_stream.h"
#include "models/registry.h"
#include "models/tokenizer/tokenizer.h"
#include "train/checkpoint/rng_state.h"
#include "train/checkpoint/sharded_checkpoint.h"

namespace tailor {
namespace fs = std::filesystem;

namespace {

constexpr const char* kScope = "export";

struct LoraModule {
  std::string path;  // "transformer.h.0.attn.c_attn"
  WeightLayout layout = WeightLayout::kConv1D;
};

// What the model of a provenance looks like, without building it: every parameter name (as
// named_parameters) with its full shape, and which modules carry LoRA.
struct ModelLayout {
  std::map<std::string, std::vector<int64_t>> base;  // hf_state_dict(): name -> shape
  std::map<std::string, std::vector<int64_t>> lora;  // lora_parameters(): name -> shape
  std::map<std::string, LoraModule> lora_by_weight;  // "<module>.weight" -> module
  CausalLM model;  // built from the config, weights never written (HF names, config.json)
};

// Read off the model built from its config without loading weights: linear weights are
// allocated with torch::empty and never written, so the OS maps no memory for them (only the
// embedding tables and norms, which torch's constructors initialise, are touched).
ModelLayout describe_model(const nlohmann::json& config, const std::string& source,
                           const std::optional<LoraConfig>& lora) {
  // Construction and apply_lora draw from torch's default generator: leave the caller's stream
  // untouched.
  const at::Tensor rng = get_torch_cpu_rng_state();
  CausalLM model;
  try {
    model = causal_lm_from_config(config, source, /*init_weights=*/false);
    if (lora) apply_lora(*model, *lora);
  } catch (...) {
    set_torch_cpu_rng_state(rng);
    throw;
  }
  set_torch_cpu_rng_state(rng);

  ModelLayout layout;
  layout.model = model;
  for (const auto& [name, tensor] : model->hf_state_dict())
    layout.base[name] = tensor.sizes().vec();
  for (const auto& item : lora_parameters(*model))
    layout.lora[item.key()] = item.value().sizes().vec();
  for (const auto& item : model->named_modules("", /*include_self=*/false)) {
    const auto* linear = item.value()->as<LinearImpl>();
    if (linear && linear->has_lora())
      layout.lora_by_weight[item.key() + ".weight"] = {item.key(), linear->layout()};
  }
  return layout;
}

// Where each tensor of the export comes from: the checkpoint's "model" tensors, else the frozen
// base model's HF directory, as model_from_checkpoint assembles them. Every tensor is returned
// in the model's dtype, as the parameters of the model built in memory would hold it.
class TensorSource {
 public:
  TensorSource(const dist::ShardedCheckpointReader& checkpoint, const fs::path& base_model,
               const CausalLMImpl& model, const ModelLayout& layout, at::ScalarType dtype)
      : checkpoint_(checkpoint), dtype_(dtype) {
    const std::string where = checkpoint.dir().string();
    for (const auto& info : checkpoint.tensors()) {
      if (info.kind != "model") continue;
      auto it = layout.base.find(info.name);
      const std::vector<int64_t>* expected = nullptr;
      if (it != layout.base.end()) expected = &it->second;
      if (auto lit = layout.lora.find(info.name); lit != layout.lora.end()) expected = &lit->second;
      if (expected == nullptr)
        throw Error("checkpoint", where + ": unexpected tensor " + info.name);
      if (info.shape != *expected)
        throw Error("checkpoint", where + ": " + info.name + " has shape " +
                                      shape_string(info.shape) + ", the model expects " +
                                      shape_string(*expected));
      if (!at::isFloatingType(info.dtype))
        throw Error("checkpoint", where + ": " + info.name + " must be a floating-point tensor");
    }
    if (!base_model.empty()) {
      base_ = std::make_unique<hf::CheckpointReader>(base_model);
      for (const auto& key : base_->names()) {
        const std::string name = model.hf_parameter_name(key);
        if (name.empty()) continue;
        auto it = layout.base.find(name);
        if (it == layout.base.end())
          throw Error(kScope, base_model.string() + ": unexpected key " + key);
        if (!base_key_.emplace(name, key).second)
          throw Error(kScope, base_model.string() + ": " + name + " is given twice");
        if (base_->info(key).shape != it->second)
          throw Error(kScope, base_model.string() + ": " + key + " has shape " +
                                  shape_string(base_->info(key).shape) + ", the model expects " +
                                  shape_string(it->second));
      }
    }
    for (const auto* names : {&layout.base, &layout.lora}) {
      for (const auto& [name, shape] : *names) {
        if (in_checkpoint(name) || base_key_.count(name)) continue;
        throw Error("checkpoint", where + ": missing tensor " + name +
                                      (base_model.empty() ? std::string()
                                                          : " (neither in the checkpoint nor in " +
                                                                base_model.string() + ")"));
      }
    }
  }

  at::Tensor load(const std::string& name) const {
    at::Tensor tensor =
        in_checkpoint(name) ? checkpoint_.read(name) : base_->tensor(base_key_.at(name));
    return tensor.to(dtype_).contiguous();
  }

 private:
  bool in_checkpoint(const std::string& name) const {
    const dist::TensorInfo* info = checkpoint_.find(name);
    return info != nullptr && info->kind == "model";
  }

  const dist::ShardedCheckpointReader& checkpoint_;
  at::ScalarType dtype_;
  std::unique_ptr<hf::CheckpointReader> base_;
  std::map<std::string, std::string> base_key_;  // parameter name -> key in the base files
};

std::vector<safetensors::HeaderEntry> entries_of(
    const std::vector<std::string>& names,
    const std::map<std::string, std::vector<int64_t>>& shapes, at::ScalarType dtype,
    const std::string& prefix = "") {
  std::vector<safetensors::HeaderEntry> entries;
  for (const auto& name : names)
    entries.push_back({prefix + name, dtype, shapes.at(name)});
  return entries;
}

}  // namespace

void export_checkpoint_streaming(const fs::path& checkpoint_dir, const fs::path& out, bool merged,
                                 ModelProvenance* provenance, uint64_t max_shard_bytes) {
  const dist::ShardedCheckpointReader checkpoint(checkpoint_dir);
  const std::string source = (checkpoint_dir / "trainer_state.json").string();
  if (!checkpoint.state().extra.contains("model"))
    throw Error("checkpoint", source + ": extra.model is missing");
  const ModelProvenance p = provenance_from_json(checkpoint.state().extra.at("model"), source);
  const at::ScalarType dtype = dtype_from_name(p.dtype);

  // The model model_from_checkpoint would build: the base directory's config when the base
  // weights come from there (load_pretrained), the recorded one otherwise.
  const nlohmann::json config = p.base_model.empty() ? p.config : read_model_config(p.base_model);
  const std::string config_source =
      p.base_model.empty() ? source : (p.base_model / "config.json").string();
  const ModelLayout layout = describe_model(config, config_source, p.lora);
  const TensorSource tensors(checkpoint, p.base_model, *layout.model, layout, dtype);
  const bool lora = p.lora.has_value();
  const double scaling = lora ? p.lora->scaling() : 0.0;

  write_dir_atomic(out, [&](const fs::path& tmp) {
    save_model_config(tmp, layout.model->hf_config(dtype), dtype);

    // Base (or merged) weights, laid out exactly as hf::save_state_dict lays them out.
    std::map<std::string, uint64_t> bytes;
    for (const auto& [name, shape] : layout.base) {
      uint64_t n = c10::elementSize(dtype);
      for (int64_t d : shape)
        n *= static_cast<uint64_t>(d);
      bytes[name] = n;
    }
    const hf::StateDictLayout files = hf::plan_state_dict(bytes, max_shard_bytes);
    for (const auto& file : files.files) {
      safetensors::StreamWriter writer(tmp / file.filename,
                                       entries_of(file.names, layout.base, dtype));
      for (const auto& name : writer.order()) {
        at::Tensor weight = tensors.load(name);
        auto module = layout.lora_by_weight.find(name);
        if (lora && merged && module != layout.lora_by_weight.end()) {
          // One module at a time: its base weight and both factors (LinearImpl::merge's math).
          const at::Tensor a = tensors.load(module->second.path + ".lora_A.weight");
          const at::Tensor b = tensors.load(module->second.path + ".lora_B.weight");
          weight = lora_merged_weight(weight, a, b, scaling, module->second.layout);
        }
        writer.write(name, weight);
      }
      writer.finish();
    }
    hf::finish_state_dict(tmp, files);

    if (lora && !merged) {
      // As save_peft_adapter: PEFT names, base path ".." when the base is stored in out/.
      const fs::path adapter = tmp / "adapter";
      const std::string base = p.base_model.empty() ? ".." : p.base_model.string();
      save_peft_adapter_config(
          adapter, *p.lora, base,
          /*fan_in_fan_out=*/layout.model->linear_layout() == WeightLayout::kConv1D);
      std::vector<std::string> names;
      for (const auto& [name, shape] : layout.lora)
        names.push_back(name);
      safetensors::StreamWriter writer(adapter / "adapter_model.safetensors",
                                       entries_of(names, layout.lora, dtype, kPeftPrefix));
      for (const auto& name : names)
        writer.write(kPeftPrefix + name, tensors.load(name));
      writer.finish();
    }
    save_tokenizer_files(p.tokenizer, tmp);
  });
  if (provenance) *provenance = p;
}

}  // namespace tailor
