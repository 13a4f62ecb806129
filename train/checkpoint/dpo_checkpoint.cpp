#include "train/checkpoint/dpo_checkpoint.h"

#include <algorithm>

#include <torch/torch.h>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/shape_string.h"
#include "models/core/lora.h"
#include "models/io/pretrained.h"
#include "models/registry.h"
#include "train/checkpoint/checkpoint.h"
#include "train/checkpoint/sharded_checkpoint.h"

namespace tailor {
namespace fs = std::filesystem;

std::vector<std::string> dpo_checkpoint_users(const fs::path& checkpoint_dir) {
  // trainer_state.json is in both layouts (one process's files; a sharded checkpoint of
  // dist.zero_stage 1 or 2).
  const fs::path state_file = checkpoint_dir / "trainer_state.json";
  if (!fs::exists(state_file)) return {};
  const auto state = nlohmann::json::parse(read_file(state_file));
  const auto extra = state.value("extra", nlohmann::json::object());
  if (!extra.contains("dpo")) return {};
  return extra["dpo"].at("users").get<std::vector<std::string>>();
}

CausalLM dpo_user_model(const fs::path& checkpoint_dir, const std::string& user,
                        ModelProvenance* out) {
  const auto users = dpo_checkpoint_users(checkpoint_dir);
  const auto it = std::find(users.begin(), users.end(), user);
  if (it == users.end()) {
    std::string known;
    for (const auto& u : users)
      known += (known.empty() ? "" : ", ") + u;
    throw Error("export",
                checkpoint_dir.string() + ": no user \"" + user + "\" (users: " + known + ")");
  }
  const int64_t u = it - users.begin();
  // Either layout; only the model tensors are read (not the optimizer state).
  const dist::ShardedCheckpointReader reader(checkpoint_dir);
  const std::string source = (checkpoint_dir / "trainer_state.json").string();
  const ModelProvenance p = provenance_from_json(reader.state().extra.at("model"), source);
  const auto dtype = dtype_from_name(p.dtype);
  CausalLM model = p.base_model.empty()
                       ? causal_lm_from_config(p.config, source, /*init_weights=*/false)
                       : load_pretrained(p.base_model, dtype);
  model->to(dtype);
  apply_lora(*model, *p.lora);
  // Bank slices become the single adapter's factors: <module>.lora_bank_A [N, r, in] ->
  // <module>.lora_A.weight [r, in], likewise B.
  auto params = model->named_parameters(/*recurse=*/true);
  int64_t copied = 0;
  torch::NoGradGuard no_grad;
  for (const auto& info : reader.tensors()) {
    if (info.kind == "optimizer") continue;
    const std::string& name = info.name;
    const at::Tensor tensor = reader.read(name);
    std::string target = name;
    at::Tensor value = tensor;
    for (const char* side : {"A", "B"}) {
      const std::string bank = std::string(".lora_bank_") + side;
      if (name.size() > bank.size() &&
          name.compare(name.size() - bank.size(), bank.size(), bank) == 0) {
        target = name.substr(0, name.size() - bank.size()) + ".lora_" + side + ".weight";
        value = tensor[u];
      }
    }
    auto* param = params.find(target);
    if (!param) throw Error("export", checkpoint_dir.string() + ": unexpected tensor " + name);
    if (param->sizes() != value.sizes())
      throw Error("export", checkpoint_dir.string() + ": " + name + " gives shape " +
                                shape_string(value.sizes()) + ", the model expects " +
                                shape_string(param->sizes()));
    param->copy_(value);
    ++copied;
  }
  if (p.base_model.empty() && copied != static_cast<int64_t>(params.size()))
    throw Error("export", checkpoint_dir.string() + ": holds " + std::to_string(copied) +
                              " of the model's " + std::to_string(params.size()) + " tensors");
  if (out) *out = p;
  return model;
}

}  // namespace tailor
