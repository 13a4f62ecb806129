#include "train/loop/model_setup.h"

#include <string>

#include "common/atomic_file.h"
#include "common/error.h"
#include "models/io/pretrained.h"
#include "models/registry.h"

namespace tailor {
namespace {

// The config.json key each recipe size override sets, per family.
struct SizeKeys {
  const char* layers;
  const char* heads;
  const char* hidden;
  const char* positions;
};

SizeKeys size_keys(const std::string& model_type) {
  if (model_type == "gpt2") return {"n_layer", "n_head", "n_embd", "n_positions"};
  return {"num_hidden_layers", "num_attention_heads", "hidden_size", "max_position_embeddings"};
}

}  // namespace

nlohmann::json model_config_for(const ModelSection& model) {
  nlohmann::json config;
  std::string source = "recipe model section";
  if (model.init == ModelInit::kPretrained) {
    const auto path = model.path / "config.json";
    source = path.string();
    try {
      config = nlohmann::json::parse(read_file(path));
    } catch (const nlohmann::json::exception& e) {
      throw Error("model", source + ": invalid JSON: " + e.what());
    }
  } else {
    config = preset_config(model.preset);
    const std::string type = config.at("model_type").get<std::string>();
    const SizeKeys keys = size_keys(type);
    if (model.n_layer > 0) config[keys.layers] = model.n_layer;
    if (model.n_embd > 0) {
      config[keys.hidden] = model.n_embd;
      // A Mistral preset's explicit head_dim belongs to its own width; derive it again.
      if (type != "gpt2") config.erase("head_dim");
    }
    if (model.n_head > 0) {
      config[keys.heads] = model.n_head;
      if (type != "gpt2") {
        config.erase("head_dim");
        // Keep grouped-query attention's ratio valid: kv heads must divide the heads.
        const int64_t kv = config.value("num_key_value_heads", model.n_head);
        if (model.n_head % kv != 0) config["num_key_value_heads"] = model.n_head;
      }
    }
    if (model.n_positions > 0) config[keys.positions] = model.n_positions;
  }
  const std::string type = config.value("model_type", "");
  if (type == "gpt2") {
    config["resid_pdrop"] = config["embd_pdrop"] = config["attn_pdrop"] = model.dropout;
  } else {
    config["attention_dropout"] = model.dropout;
  }
  // Validates every key now, before any work, naming the source.
  check_model_config(config, source);
  return config;
}

CausalLM build_model(const ModelSection& model, const nlohmann::json& config,
                     c10::ScalarType dtype) {
  const bool pretrained = model.init == ModelInit::kPretrained;
  const std::string source =
      pretrained ? (model.path / "config.json").string() : "recipe model section";
  // Built without initialisation and converted to `dtype` first: a bf16 model never exists in
  // float32 (torch::empty's pages are never written), then initialised or loaded in `dtype`
  // from the memory-mapped checkpoint. Initialising after construction draws the same numbers
  // as initialising inside it.
  CausalLM lm = causal_lm_from_config(config, source, /*init_weights=*/false);
  lm->to(dtype);
  if (pretrained) {
    load_pretrained_weights(*lm, model.path);
  } else {
    lm->init_weights();
  }
  return lm;
}

}  // namespace tailor
