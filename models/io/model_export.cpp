#include "models/io/model_export.h"

#include "common/atomic_file.h"
#include "common/error.h"
#include "models/io/peft.h"
#include "models/io/pretrained.h"
#include "models/registry.h"
#include "models/tokenizer/tokenizer.h"

namespace tailor {
namespace fs = std::filesystem;

std::string dtype_name(c10::ScalarType dtype) {
  if (dtype == c10::kBFloat16) return "bfloat16";
  if (dtype == c10::kDouble) return "float64";
  return "float32";
}

c10::ScalarType dtype_from_name(const std::string& name) {
  if (name == "bfloat16") return c10::kBFloat16;
  if (name == "float64") return c10::kDouble;
  return c10::kFloat;
}

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
