#include "models/io/vpl_export.h"

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "models/core/lora.h"
#include "models/io/hf_checkpoint.h"
#include "models/io/model_export.h"
#include "models/io/pretrained.h"

namespace tailor {
namespace fs = std::filesystem;

void save_vpl_export(const fs::path& out, CausalLMImpl& backbone, VplHeads& heads,
                     const std::optional<LoraConfig>& lora, bool merged,
                     const fs::path& tokenizer_dir) {
  ModelProvenance provenance;
  provenance.config = backbone.hf_config(backbone.dtype());
  provenance.tokenizer = tokenizer_dir;
  provenance.dtype = backbone.dtype() == at::kBFloat16 ? "bfloat16" : "float32";
  provenance.lora = lora;
  write_dir_atomic(out, [&](const fs::path& tmp) {
    export_model(backbone, provenance, tmp / "backbone", merged);
    TensorMap tensors;
    for (const auto& item : heads->named_parameters())
      tensors.emplace(item.key(), item.value().detach().contiguous());
    hf::save_state_dict(tmp, tensors, 5'000'000'000ULL, "vpl_heads");
    const auto& c = heads->config();
    const nlohmann::json config = {{"model_type", "vpl"},
                                   {"embed_dim", c.embed_dim},
                                   {"hidden_dim", c.hidden_dim},
                                   {"latent_dim", c.latent_dim},
                                   {"logvar_clamp", c.logvar_clamp}};
    write_file_atomic(tmp / "vpl_config.json", config.dump(2) + "\n");
  });
}

std::pair<CausalLM, VplHeads> load_vpl_export(const fs::path& dir) {
  const fs::path config_file = dir / "vpl_config.json";
  if (!fs::is_regular_file(config_file))
    throw Error("vpl", dir.string() + ": no vpl_config.json (not a VPL export)");
  const auto json = nlohmann::json::parse(read_file(config_file));
  VplConfig c;
  c.embed_dim = json.at("embed_dim").get<int64_t>();
  c.hidden_dim = json.at("hidden_dim").get<int64_t>();
  c.latent_dim = json.at("latent_dim").get<int64_t>();
  c.logvar_clamp = json.at("logvar_clamp").get<double>();
  VplHeads heads(c);
  const TensorMap tensors = hf::load_state_dict(dir, "vpl_heads");
  torch::NoGradGuard no_grad;
  for (auto& item : heads->named_parameters()) {
    const auto it = tensors.find(item.key());
    if (it == tensors.end())
      throw Error("vpl", dir.string() + "/vpl_heads.safetensors: missing " + item.key());
    if (it->second.sizes() != item.value().sizes())
      throw Error("vpl", dir.string() + "/vpl_heads.safetensors: " + item.key() + " has shape " +
                             std::to_string(it->second.numel()) + " elements, expected " +
                             std::to_string(item.value().numel()));
    item.value().copy_(it->second);
  }
  CausalLM backbone = load_pretrained(dir / "backbone");
  if (fs::is_directory(dir / "backbone" / "adapter"))
    load_peft_adapter(dir / "backbone" / "adapter", *backbone);
  return {backbone, heads};
}

}  // namespace tailor
