#include "trainer/run/model_checkpoint.h"

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/shape_string.h"
#include "dist/sharded_checkpoint.h"
#include "models/io/peft.h"
#include "models/io/pretrained.h"
#include "models/registry.h"
#include "models/tokenizer/tokenizer.h"
#include "trainer/run/checkpoint.h"

namespace tailor {
namespace fs = std::filesystem;

nlohmann::json provenance_to_json(const ModelProvenance& p) {
  nlohmann::json j;
  j["config"] = p.config;
  j["lora"] = p.lora ? peft_adapter_config(*p.lora, p.base_model.string(),
                                           p.config.value("model_type", "") == "gpt2")
                     : nlohmann::json();
  j["base_model"] = p.base_model.string();
  j["tokenizer"] = p.tokenizer.string();
  j["dtype"] = p.dtype;
  return j;
}

ModelProvenance provenance_from_json(const nlohmann::json& j, const std::string& source) {
  for (const char* key : {"config", "lora", "base_model", "tokenizer", "dtype"}) {
    if (!j.contains(key))
      throw Error("checkpoint", source + ": extra.model." + key + " is missing");
  }
  ModelProvenance p;
  p.config = j.at("config");
  // Checkpoints written before Mistral recorded GPT-2 configs without model_type.
  if (p.config.is_object() && !p.config.contains("model_type")) p.config["model_type"] = "gpt2";
  check_model_config(p.config, source + " (extra.model.config)");
  if (!j.at("lora").is_null())
    p.lora = lora_config_from_peft(j.at("lora"), source + " (extra.model.lora)");
  p.base_model = j.at("base_model").get<std::string>();
  p.tokenizer = j.at("tokenizer").get<std::string>();
  p.dtype = j.at("dtype").get<std::string>();
  return p;
}

fs::path resolve_checkpoint_dir(const fs::path& path) {
  if (fs::exists(path / "trainer_state.json")) return path;
  if (auto latest = latest_checkpoint(path)) return *latest;
  throw Error("export", path.string() +
                            ": neither a checkpoint directory (trainer_state.json) nor a run "
                            "directory with checkpoints/");
}

namespace {

// A sharded checkpoint (dist/sharded_checkpoint.h) assembled into whole tensors: only the model
// tensors are read, each once, so scoring and export of small models work on either layout.
Checkpoint load_model_tensors(const fs::path& checkpoint_dir) {
  if (!dist::is_sharded_checkpoint(checkpoint_dir)) return load_checkpoint(checkpoint_dir);
  const dist::ShardedCheckpointReader reader(checkpoint_dir);
  Checkpoint ckpt;
  ckpt.dir = checkpoint_dir;
  ckpt.state = reader.state();
  for (const auto& info : reader.tensors()) {
    if (info.kind == "model") ckpt.model.emplace(info.name, reader.read(info.name));
  }
  return ckpt;
}

}  // namespace

CausalLM model_from_checkpoint(const fs::path& checkpoint_dir, ModelProvenance* out) {
  Checkpoint ckpt = load_model_tensors(checkpoint_dir);
  const std::string source = (checkpoint_dir / "trainer_state.json").string();
  if (!ckpt.state.extra.contains("model"))
    throw Error("checkpoint", source + ": extra.model is missing");
  ModelProvenance p = provenance_from_json(ckpt.state.extra.at("model"), source);
  const auto dtype = p.dtype == "bfloat16" ? at::kBFloat16 : at::kFloat;

  CausalLM model = p.base_model.empty()
                       ? causal_lm_from_config(p.config, source, /*init_weights=*/false)
                       : load_pretrained(p.base_model, dtype);
  model->to(dtype);
  if (p.lora) apply_lora(*model, *p.lora);
  // model.safetensors holds every tensor (base stored) or the LoRA factors only.
  auto params = model->named_parameters(/*recurse=*/true);
  for (const auto& [name, tensor] : ckpt.model) {
    auto* param = params.find(name);
    if (param == nullptr)
      throw Error("checkpoint", checkpoint_dir.string() + ": unexpected tensor " + name);
    if (param->sizes() != tensor.sizes())
      throw Error("checkpoint", checkpoint_dir.string() + ": " + name + " has shape " +
                                    shape_string(tensor.sizes()) + ", the model expects " +
                                    shape_string(param->sizes()));
    at::NoGradGuard no_grad;
    param->copy_(tensor);
  }
  if (p.base_model.empty() && ckpt.model.size() != params.size())
    throw Error("checkpoint", checkpoint_dir.string() + ": model.safetensors has " +
                                  std::to_string(ckpt.model.size()) + " tensors, the model " +
                                  std::to_string(params.size()));
  if (out) *out = p;
  return model;
}

void export_model(CausalLMImpl& model, const ModelProvenance& p, const fs::path& out, bool merged) {
  // Build the whole export in a temporary directory and rename it into place.
  write_dir_atomic(out, [&](const fs::path& tmp) {
    const bool lora = has_lora(model);
    if (lora && merged) merge_lora(model);
    save_pretrained(tmp, model);
    if (lora && merged) unmerge_lora(model);
    if (lora && !merged) {
      const std::string base = p.base_model.empty() ? ".." : p.base_model.string();
      save_peft_adapter(tmp / "adapter", model, *p.lora, base,
                        /*fan_in_fan_out=*/model.linear_layout() == WeightLayout::kConv1D);
    }
    save_tokenizer_files(p.tokenizer, tmp);
  });
}

}  // namespace tailor
