#include "trainer/run/sharded_export.h"

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
#include "dist/sharded_checkpoint.h"
#include "models/core/linear.h"
#include "models/core/lora.h"
#include "models/gpt2/gpt2.h"
#include "models/io/hf_checkpoint.h"
#include "models/io/peft.h"
#include "models/io/pretrained.h"
#include "models/io/safetensors_stream.h"
#include "models/tokenizer/tokenizer.h"
#include "trainer/run/rng_state.h"

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
};

// Built from a miniature of the model whose every dimension is a distinct marker, so each
// parameter's full shape follows by substitution: names depend only on n_layer, the tied
// embeddings and the LoRA targets, and every GPT-2 dimension is one of V, P, C, 3C, I or r.
ModelLayout describe_model(const GPT2Config& config, const std::optional<LoraConfig>& lora) {
  const int64_t V = 11, P = 13, C = 17, I = 19, R = 23;
  const std::map<int64_t, int64_t> full = {{V, config.vocab_size},  {P, config.n_positions},
                                           {C, config.n_embd},      {3 * C, 3 * config.n_embd},
                                           {I, config.inner_dim()}, {R, lora ? lora->rank : 0}};
  GPT2Config mini = config;
  mini.vocab_size = V;
  mini.n_positions = P;
  mini.n_embd = C;
  mini.n_head = 1;
  mini.n_inner = I;
  // apply_lora draws lora_A from torch's default generator: leave the caller's stream untouched.
  const at::Tensor rng = get_torch_cpu_rng_state();
  GPT2LMHead model(mini, /*init_weights=*/false);
  try {
    if (lora) {
      LoraConfig marked = *lora;
      marked.rank = R;
      apply_lora(*model, marked);
    }
  } catch (...) {
    set_torch_cpu_rng_state(rng);
    throw;
  }
  set_torch_cpu_rng_state(rng);

  auto full_shape = [&](const std::string& name, c10::IntArrayRef mini_shape) {
    std::vector<int64_t> shape;
    for (int64_t d : mini_shape) {
      auto it = full.find(d);
      if (it == full.end())
        throw Error(kScope, "internal: " + name + " has an unexpected dimension " +
                                std::to_string(d) + " in the miniature model");
      shape.push_back(it->second);
    }
    return shape;
  };
  ModelLayout layout;
  for (const auto& [name, tensor] : model->hf_state_dict())
    layout.base[name] = full_shape(name, tensor.sizes());
  for (const auto& item : lora_parameters(*model))
    layout.lora[item.key()] = full_shape(item.key(), item.value().sizes());
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
               const GPT2Config& config, const ModelLayout& layout, at::ScalarType dtype)
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
        const std::string name = gpt2_parameter_name(key, config.tie_word_embeddings);
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
  const at::ScalarType dtype = p.dtype == "bfloat16" ? at::kBFloat16 : at::kFloat;

  // The model model_from_checkpoint would build: the base directory's config when the base
  // weights come from there (load_gpt2_pretrained), the recorded one otherwise.
  GPT2Config config = p.config;
  if (!p.base_model.empty()) {
    const fs::path config_path = p.base_model / "config.json";
    nlohmann::json json;
    try {
      json = nlohmann::json::parse(read_file(config_path));
    } catch (const nlohmann::json::exception& e) {
      throw Error("pretrained", config_path.string() + ": invalid JSON: " + e.what());
    }
    config = GPT2Config::from_json(json, config_path.string());
  }
  const ModelLayout layout = describe_model(config, p.lora);
  const TensorSource tensors(checkpoint, p.base_model, config, layout, dtype);
  const bool lora = p.lora.has_value();
  const double scaling = lora ? p.lora->scaling() : 0.0;

  write_dir_atomic(out, [&](const fs::path& tmp) {
    save_gpt2_config(tmp, config, dtype);

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
      save_peft_adapter_config(adapter, *p.lora, base, /*fan_in_fan_out=*/true);
      std::vector<std::string> names;
      for (const auto& [name, shape] : layout.lora)
        names.push_back(name);
      safetensors::StreamWriter writer(adapter / "adapter_model.safetensors",
                                       entries_of(names, layout.lora, dtype, kPeftPrefix));
      for (const auto& name : names)
        writer.write(kPeftPrefix + name, tensors.load(name));
      writer.finish();
    }
    Tokenizer::from_dir(p.tokenizer).save(tmp);
  });
  if (provenance) *provenance = p;
}

}  // namespace tailor
