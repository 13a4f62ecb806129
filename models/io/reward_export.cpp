#include "models/io/reward_export.h"

#include <algorithm>
#include <cmath>
#include <set>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/shape_string.h"
#include "models/core/linear.h"
#include "models/io/hf_checkpoint.h"
#include "models/io/peft.h"
#include "models/io/pretrained.h"
#include "models/io/safetensors.h"
#include "models/registry.h"
#include "models/tokenizer/tokenizer.h"

namespace tailor {
namespace fs = std::filesystem;

namespace {

const char* kRewardExportScope = "reward_model";
const char* kScoreKey = "score.weight";

nlohmann::json read_json(const fs::path& path) {
  if (!fs::exists(path)) throw Error(kRewardExportScope, path.string() + ": file not found");
  try {
    return nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(kRewardExportScope, path.string() + ": invalid JSON: " + e.what());
  }
}

// A module path matches a PEFT target equal to it or ending in "." + target (lora.h).
bool export_path_matches(const std::string& path, const std::string& target) {
  return path == target || (path.size() > target.size() &&
                            path.compare(path.size() - target.size(), target.size(), target) == 0 &&
                            path[path.size() - target.size() - 1] == '.');
}

// The last `count` dot-separated components of `path`.
std::string suffix(const std::string& path, int count) {
  size_t pos = path.size();
  for (int i = 0; i < count; ++i) {
    if (pos == 0 || pos == std::string::npos) return path;
    pos = path.rfind('.', pos - 1);
    if (pos == std::string::npos) return path;
  }
  return path.substr(pos + 1);
}

// config.json fields of transformers' PretrainedConfig for K labels: id2label keys are strings
// (JSON), label2id values are ints.
nlohmann::json classification_fields(const std::string& model_type, int64_t num_labels,
                                     int64_t pad_token_id) {
  // GPT2ForSequenceClassification, MistralForSequenceClassification.
  const std::string family = model_type == "gpt2" ? "GPT2" : "Mistral";
  nlohmann::json id2label = nlohmann::json::object(), label2id = nlohmann::json::object();
  for (int64_t k = 0; k < num_labels; ++k) {
    id2label[std::to_string(k)] = "LABEL_" + std::to_string(k);
    label2id["LABEL_" + std::to_string(k)] = k;
  }
  return {{"architectures", {family + "ForSequenceClassification"}},
          {"id2label", id2label},
          {"label2id", label2id},
          {"num_labels", num_labels},
          {"pad_token_id", pad_token_id}};
}

// num_labels as transformers' PretrainedConfig derives it: len(id2label), else num_labels,
// else 2 (its default).
int64_t num_labels_of(const nlohmann::json& config, const fs::path& source) {
  if (auto it = config.find("id2label"); it != config.end() && !it->is_null()) {
    if (!it->is_object() || it->empty())
      throw Error(kRewardExportScope, source.string() + ": id2label: expected a non-empty object");
    return static_cast<int64_t>(it->size());
  }
  if (auto it = config.find("num_labels"); it != config.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 1)
      throw Error(kRewardExportScope,
                  source.string() + ": num_labels: expected a positive integer, got " + it->dump());
    return it->get<int64_t>();
  }
  return 2;
}

// The file a checkpoint directory's tensors come from, for messages.
fs::path weights_file(const fs::path& dir) {
  const fs::path index = dir / "model.safetensors.index.json";
  return fs::exists(index) ? index : dir / "model.safetensors";
}

void check_score_shape(const at::Tensor& weight, const RewardModel& model, const std::string& key,
                       const fs::path& file, const fs::path& config_file) {
  const std::vector<int64_t> expected{model->num_labels(), model->backbone->hidden_size()};
  if (weight.sizes() != at::IntArrayRef(expected)) {
    throw Error(kRewardExportScope, file.string() + ": " + key + " has shape " +
                                        shape_string(weight.sizes()) + ", expected " +
                                        shape_string(expected) + " ([num_labels, n_embd] from " +
                                        config_file.string() + ")");
  }
  if (!at::isFloatingType(weight.scalar_type()))
    throw Error(kRewardExportScope,
                file.string() + ": " + key + " must be a floating-point tensor");
}

void write_adapter(const fs::path& dir, const RewardModel& model) {
  fs::create_directories(dir);
  const bool conv1d = model->backbone->linear_layout() == WeightLayout::kConv1D;
  nlohmann::json config =
      peft_adapter_config(lora_config_of(*model), "..", /*fan_in_fan_out=*/conv1d, "SEQ_CLS");
  config["modules_to_save"] = {"score"};
  write_file_atomic(dir / "adapter_config.json", config.dump(2) + "\n");
  TensorMap tensors = peft_adapter_tensors(*model);
  tensors.emplace(std::string(kPeftPrefix) + kScoreKey, model->score->weight.detach());
  safetensors::save(dir / "adapter_model.safetensors", tensors);
}

void load_adapter(const fs::path& dir, RewardModel& model, const fs::path& config_file) {
  const fs::path config_path = dir / "adapter_config.json";
  const nlohmann::json json = read_json(config_path);
  const LoraConfig config = lora_config_from_peft(json, config_path.string());
  bool head_saved = false;
  if (auto it = json.find("modules_to_save"); it != json.end() && it->is_array()) {
    head_saved = std::find(it->begin(), it->end(), "score") != it->end();
  }
  const fs::path weights = dir / "adapter_model.safetensors";
  if (!fs::exists(weights)) throw Error(kRewardExportScope, weights.string() + ": file not found");
  TensorMap tensors = safetensors::load(weights);
  // The head is a modules_to_save copy, not a LoRA factor: take it out before the LoRA load.
  at::Tensor head;
  for (const std::string& key : {std::string(kPeftPrefix) + kScoreKey, std::string(kScoreKey)}) {
    if (auto it = tensors.find(key); it != tensors.end()) {
      check_score_shape(it->second, model, key, weights, config_file);
      head = it->second;
      tensors.erase(it);
    }
  }
  if (head_saved && !head.defined()) {
    throw Error(kRewardExportScope, weights.string() + ": modules_to_save lists \"score\" but " +
                                        std::string(kPeftPrefix) + kScoreKey + " is missing");
  }
  apply_reward_lora(model, config);
  load_peft_adapter_tensors(*model, tensors, config, weights.string());
  if (head.defined()) {
    torch::NoGradGuard no_grad;
    model->score->weight.copy_(head);
  }
}

}  // namespace

LoraConfig lora_config_of(const torch::nn::Module& model) {
  std::vector<std::pair<std::string, const LinearImpl*>> linears;
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    if (const auto* linear = item.value()->as<LinearImpl>())
      linears.emplace_back(item.key(), linear);
  }
  LoraConfig config;
  const LinearImpl* first = nullptr;
  std::set<std::string> wrapped;
  for (const auto& [path, linear] : linears) {
    if (!linear->has_lora()) continue;
    wrapped.insert(path);
    if (!first) {
      first = linear;
      continue;
    }
    if (linear->lora_rank() != first->lora_rank() ||
        linear->lora_scaling() != first->lora_scaling() ||
        linear->lora_dropout() != first->lora_dropout()) {
      throw Error("lora", path + ": rank, scaling or dropout differ from the other LoRA layers; " +
                              "one adapter config cannot describe them");
    }
  }
  if (!first) throw Error("lora", "the model has no LoRA layers");
  config.rank = first->lora_rank();
  config.alpha = first->lora_scaling() * static_cast<double>(config.rank);
  config.dropout = first->lora_dropout();
  // For each wrapped layer, the shortest name suffix that selects only wrapped layers.
  for (const auto& [path, linear] : linears) {
    if (!wrapped.count(path)) continue;
    for (int count = 1;; ++count) {
      const std::string target = suffix(path, count);
      const bool exact = std::all_of(linears.begin(), linears.end(), [&](const auto& other) {
        return !export_path_matches(other.first, target) || wrapped.count(other.first) > 0;
      });
      if (exact || target == path) {
        if (std::find(config.targets.begin(), config.targets.end(), target) == config.targets.end())
          config.targets.push_back(target);
        break;
      }
    }
  }
  return config;
}

void save_reward_model(const fs::path& dir, RewardModel& model, bool merged,
                       const fs::path& tokenizer_dir, int64_t pad_token_id) {
  write_dir_atomic(dir, [&](const fs::path& tmp) {
    const bool lora = has_lora(*model);
    const CausalLMImpl& backbone = *model->backbone;
    if (pad_token_id < 0) {
      pad_token_id = backbone.pad_token_id().value_or(backbone.eos_token_id().value_or(0));
    }
    save_model_config(
        tmp, backbone.hf_config(backbone.dtype()), backbone.dtype(),
        classification_fields(backbone.model_type(), model->num_labels(), pad_token_id));
    TensorMap tensors = backbone.hf_state_dict();
    tensors.erase("lm_head.weight");  // an untied LM head is no part of the classifier
    tensors.emplace(kScoreKey, model->score->weight.detach());
    if (lora && merged) {
      // Merged copies (what LinearImpl::merge leaves in the weight), so the caller's model is
      // left exactly as it was.
      for (const auto& item : model->named_modules("", /*include_self=*/false)) {
        const auto* linear = item.value()->as<LinearImpl>();
        if (!linear || !linear->has_lora() || linear->merged()) continue;
        tensors.at(item.key() + ".weight") = lora_merged_weight(
            linear->weight.detach(), linear->lora_A->weight.detach(),
            linear->lora_B->weight.detach(), linear->lora_scaling(), linear->layout());
      }
    }
    hf::save_state_dict(tmp, tensors);
    if (lora && !merged) write_adapter(tmp / "adapter", model);
    if (!tokenizer_dir.empty()) save_tokenizer_files(tokenizer_dir, tmp);
  });
}

RewardModel load_reward_model(const fs::path& dir, const fs::path& adapter_dir,
                              c10::ScalarType dtype) {
  const fs::path config_path = dir / "config.json";
  const nlohmann::json json = read_json(config_path);
  const int64_t num_labels = num_labels_of(json, config_path);
  nlohmann::json config = json;
  config["tie_word_embeddings"] = true;  // no LM head to load
  CausalLM backbone = causal_lm_from_config(config, config_path.string(), /*init_weights=*/false);
  prepare_for_load(*backbone, dtype);
  RewardModel model(backbone, num_labels);

  TensorMap tensors = hf::map_state_dict(dir);  // views of the files, released once copied
  const fs::path file = weights_file(dir);
  auto head = tensors.find(kScoreKey);
  if (head == tensors.end()) {
    throw Error(kRewardExportScope, file.string() + ": missing " + kScoreKey +
                                        " (the sequence-classification head); is this a causal-LM "
                                        "checkpoint?");
  }
  check_score_shape(head->second, model, kScoreKey, file, config_path);
  {
    torch::NoGradGuard no_grad;
    model->score->weight.copy_(head->second);
  }
  tensors.erase(head);
  backbone->load_hf_state_dict(tensors, dir.string(), hf::release_mapped);

  fs::path adapter = adapter_dir;
  if (adapter.empty() && fs::exists(dir / "adapter" / "adapter_config.json"))
    adapter = dir / "adapter";
  if (!adapter.empty()) load_adapter(adapter, model, config_path);
  return model;
}

bool is_reward_model_dir(const fs::path& dir) {
  const fs::path path = dir / "config.json";
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(read_file(path));
  } catch (const std::exception&) {
    return false;  // the loader reports what is wrong with the file
  }
  auto it = json.is_object() ? json.find("architectures") : json.end();
  if (it == json.end() || !it->is_array()) return false;
  const std::string tail = "ForSequenceClassification";
  for (const auto& name : *it) {
    if (!name.is_string()) continue;
    const std::string s = name.get<std::string>();
    if (s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0)
      return true;
  }
  return false;
}

}  // namespace tailor
