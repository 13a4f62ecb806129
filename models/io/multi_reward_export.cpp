#include "models/io/multi_reward_export.h"

#include <c10/core/GradMode.h>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/fnv1a.h"
#include "models/io/model_export.h"
#include "models/io/pretrained.h"
#include "models/io/safetensors.h"

namespace tailor {
namespace fs = std::filesystem;
namespace {

constexpr const char* kConfigFile = "multi_reward_config.json";
constexpr const char* kWeightsFile = "multi_reward.safetensors";

nlohmann::json read_config(const fs::path& dir) {
  const fs::path file = dir / kConfigFile;
  if (!fs::is_regular_file(file))
    throw Error("multi_reward", dir.string() + ": no " + kConfigFile +
                                    " (not a multi-reward export; the elicit stage writes one "
                                    "to OUTPUT_DIR/export)");
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(read_file(file));
  } catch (const nlohmann::json::exception& e) {
    throw Error("multi_reward", file.string() + ": not valid JSON: " + e.what());
  }
  if (json.value("model_type", "") != "multi_reward")
    throw Error("multi_reward", file.string() + ": model_type is not \"multi_reward\"");
  return json;
}

}  // namespace

std::string save_multi_reward_export(const fs::path& out, CausalLMImpl& backbone,
                                     MultiRewardImpl& model, const FeatureEncoding& encoding,
                                     const fs::path& tokenizer_dir) {
  ModelProvenance provenance;
  provenance.config = backbone.hf_config(backbone.dtype());
  provenance.tokenizer = tokenizer_dir;
  provenance.dtype = dtype_name(backbone.dtype());
  std::string id;
  write_dir_atomic(out, [&](const fs::path& tmp) {
    export_model(backbone, provenance, tmp / "backbone", /*merged=*/false);
    TensorMap tensors;
    for (const auto& item : model.named_parameters())
      tensors.emplace(item.key(), item.value().detach().to(at::kFloat).contiguous());
    for (const auto& item : model.named_buffers())
      tensors.emplace(item.key(), item.value().detach().to(at::kFloat).contiguous());
    safetensors::save(tmp / kWeightsFile, tensors);
    id = fnv1a64_hex(read_file(tmp / kWeightsFile));
    const auto& c = model.config();
    const nlohmann::json config = {{"model_type", "multi_reward"},
                                   {"embed_dim", c.embed_dim},
                                   {"hidden_dim", c.hidden_dim},
                                   {"dropout", c.dropout},
                                   {"heads", c.heads},
                                   {"template", to_string(encoding.prompt_template)},
                                   {"max_length", encoding.max_length},
                                   {"id", id}};
    write_file_atomic(tmp / kConfigFile, config.dump(2) + "\n");
  });
  return id;
}

std::string multi_reward_export_id(const fs::path& dir) {
  const nlohmann::json json = read_config(dir);
  if (!json.contains("id") || !json.at("id").is_string())
    throw Error("multi_reward", (dir / kConfigFile).string() + ": no \"id\"");
  return json.at("id").get<std::string>();
}

bool is_multi_reward_dir(const fs::path& dir) {
  return fs::is_regular_file(dir / kConfigFile);
}

MultiRewardExport load_multi_reward_export(const fs::path& dir) {
  const nlohmann::json json = read_config(dir);
  const std::string source = (dir / kConfigFile).string();
  MultiRewardConfig c;
  MultiRewardExport out;
  try {
    c.embed_dim = json.at("embed_dim").get<int64_t>();
    c.hidden_dim = json.at("hidden_dim").get<int64_t>();
    c.dropout = json.at("dropout").get<double>();
    c.heads = json.at("heads").get<std::vector<std::string>>();
    const std::string name = json.at("template").get<std::string>();
    const auto tmpl = enum_from_name(prompt_template_names(), name);
    if (!tmpl)
      throw Error("multi_reward", source + ": template \"" + name + "\" is not one of " +
                                      enum_choices(prompt_template_names()));
    out.encoding.prompt_template = *tmpl;
    out.encoding.max_length = json.at("max_length").get<int64_t>();
    out.id = json.at("id").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw Error("multi_reward", source + ": " + e.what());
  }
  out.model = MultiReward(c);
  const fs::path weights = dir / kWeightsFile;
  if (!fs::is_regular_file(weights)) throw Error("multi_reward", weights.string() + ": missing");
  if (fnv1a64_hex(read_file(weights)) != out.id)
    throw Error("multi_reward", weights.string() + ": its hash is not the id " + out.id + " in " +
                                    source + " (the file was changed after export)");
  const TensorMap tensors = safetensors::load(weights);
  c10::NoGradGuard no_grad;
  auto restore = [&](const std::string& name, at::Tensor& target) {
    const auto it = tensors.find(name);
    if (it == tensors.end()) throw Error("multi_reward", weights.string() + ": missing " + name);
    if (it->second.sizes() != target.sizes())
      throw Error("multi_reward", weights.string() + ": " + name + " has " +
                                      std::to_string(it->second.numel()) + " elements, expected " +
                                      std::to_string(target.numel()));
    target.copy_(it->second);
  };
  for (auto& item : out.model->named_parameters())
    restore(item.key(), item.value());
  for (auto& item : out.model->named_buffers())
    restore(item.key(), item.value());
  out.model->eval();
  out.backbone = load_pretrained(dir / "backbone");
  out.backbone->eval();
  return out;
}

}  // namespace tailor
