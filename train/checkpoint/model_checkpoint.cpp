#include "train/checkpoint/model_checkpoint.h"

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/shape_string.h"
#include "models/io/peft.h"
#include "models/io/pretrained.h"
#include "models/registry.h"
#include "models/tokenizer/tokenizer.h"
#include "train/checkpoint/checkpoint.h"
#include "train/checkpoint/sharded_checkpoint.h"

namespace tailor {
namespace fs = std::filesystem;

fs::path resolve_checkpoint_dir(const fs::path& path) {
  if (fs::exists(path / "trainer_state.json")) return path;
  if (auto latest = latest_checkpoint(path)) return *latest;
  throw Error("export", path.string() +
                            ": neither a checkpoint directory (trainer_state.json) nor a run "
                            "directory with checkpoints/");
}

namespace {

// A sharded checkpoint (train/checkpoint/sharded_checkpoint.h) assembled into whole tensors: only
// the model tensors are read, each once, so scoring and export of small models work on either
// layout.
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
  const auto dtype = dtype_from_name(p.dtype);

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

}  // namespace tailor
