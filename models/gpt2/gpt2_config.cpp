#include "models/gpt2/gpt2_config.h"

#include <cmath>
#include <functional>
#include <map>
#include <sstream>

#include "common/error.h"

namespace tailor {
namespace {

const char* kGpt2ConfigScope = "config";

std::string describe(const nlohmann::json& value) {
  std::string text = value.dump();
  return text.size() > 40 ? text.substr(0, 37) + "..." : text;
}

[[noreturn]] void fail(const std::string& source, const std::string& message) {
  throw Error(kGpt2ConfigScope, source + ": " + message);
}

// Typed readers: a present key of the wrong type is an error naming the key; an absent key keeps
// the default.
void read_int(const nlohmann::json& json, const std::string& source, const char* key,
              int64_t& out) {
  if (!json.contains(key)) return;
  const auto& value = json.at(key);
  if (!value.is_number_integer()) {
    fail(source, std::string(key) + ": expected an integer, got " + describe(value));
  }
  out = value.get<int64_t>();
}

void read_double(const nlohmann::json& json, const std::string& source, const char* key,
                 double& out) {
  if (!json.contains(key)) return;
  const auto& value = json.at(key);
  if (!value.is_number()) {
    fail(source, std::string(key) + ": expected a number, got " + describe(value));
  }
  out = value.get<double>();
}

void read_bool(const nlohmann::json& json, const std::string& source, const char* key, bool& out) {
  if (!json.contains(key)) return;
  const auto& value = json.at(key);
  if (!value.is_boolean()) {
    fail(source, std::string(key) + ": expected true or false, got " + describe(value));
  }
  out = value.get<bool>();
}

void read_string(const nlohmann::json& json, const std::string& source, const char* key,
                 std::string& out) {
  if (!json.contains(key)) return;
  const auto& value = json.at(key);
  if (!value.is_string()) {
    fail(source, std::string(key) + ": expected a string, got " + describe(value));
  }
  out = value.get<std::string>();
}

bool supported_activation(const std::string& name) {
  return name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu" || name == "relu";
}

GPT2Config make(int64_t n_positions, int64_t n_embd, int64_t n_layer, int64_t n_head) {
  GPT2Config config;
  config.n_positions = n_positions;
  config.n_embd = n_embd;
  config.n_layer = n_layer;
  config.n_head = n_head;
  return config;
}

const std::map<std::string, std::function<GPT2Config()>>& presets() {
  static const std::map<std::string, std::function<GPT2Config()>> table = {
      {"gpt2", gpt2_124m},  {"gpt2-medium", gpt2_medium}, {"gpt2-large", gpt2_large},
      {"gpt2-xl", gpt2_xl}, {"gpt2-tiny", gpt2_tiny},     {"gpt2-mini", gpt2_mini},
  };
  return table;
}

}  // namespace

// Sizes of the released checkpoints (openai-community/gpt2*, config.json on the HF hub).
GPT2Config gpt2_124m() {
  return make(1024, 768, 12, 12);
}
GPT2Config gpt2_medium() {
  return make(1024, 1024, 24, 16);
}
GPT2Config gpt2_large() {
  return make(1024, 1280, 36, 20);
}
GPT2Config gpt2_xl() {
  return make(1024, 1600, 48, 25);
}
GPT2Config gpt2_tiny() {
  return make(256, 64, 2, 4);
}
GPT2Config gpt2_mini() {
  return make(256, 128, 4, 4);
}

void GPT2Config::validate(const std::string& source) const {
  auto positive = [&](const char* key, int64_t value) {
    if (value <= 0) fail(source, std::string(key) + " (" + std::to_string(value) + ") must be > 0");
  };
  positive("vocab_size", vocab_size);
  positive("n_positions", n_positions);
  positive("n_embd", n_embd);
  positive("n_layer", n_layer);
  positive("n_head", n_head);
  if (n_inner) positive("n_inner", *n_inner);
  if (n_embd % n_head != 0) {
    fail(source, "n_embd (" + std::to_string(n_embd) + ") must be divisible by n_head (" +
                     std::to_string(n_head) + ")");
  }
  if (!supported_activation(activation_function)) {
    fail(source, "activation_function: unsupported \"" + activation_function +
                     "\" (expected \"gelu_new\", \"gelu_pytorch_tanh\", \"gelu\" or \"relu\")");
  }
  if (!(layer_norm_epsilon > 0) || !std::isfinite(layer_norm_epsilon)) {
    std::ostringstream os;
    os << "layer_norm_epsilon (" << layer_norm_epsilon << ") must be a positive number";
    fail(source, os.str());
  }
  auto probability = [&](const char* key, double value) {
    if (!(value >= 0.0 && value < 1.0)) {
      std::ostringstream os;
      os << key << " (" << value << ") must be in [0, 1)";
      fail(source, os.str());
    }
  };
  probability("resid_pdrop", resid_pdrop);
  probability("embd_pdrop", embd_pdrop);
  probability("attn_pdrop", attn_pdrop);
  if (torch_dtype != "float32" && torch_dtype != "bfloat16" && torch_dtype != "float16") {
    fail(source, "torch_dtype: unsupported \"" + torch_dtype +
                     "\" (expected \"float32\", \"bfloat16\" or \"float16\")");
  }
}

GPT2Config GPT2Config::from_json(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object()) fail(source, "expected a JSON object, got " + describe(json));
  if (json.contains("model_type") && json.at("model_type") != "gpt2") {
    fail(source, "model_type: expected \"gpt2\", got " + describe(json.at("model_type")));
  }
  GPT2Config config;
  read_int(json, source, "vocab_size", config.vocab_size);
  // Older configs carry only n_ctx; transformers sizes wpe by n_positions when both exist.
  if (json.contains("n_positions")) {
    read_int(json, source, "n_positions", config.n_positions);
  } else {
    read_int(json, source, "n_ctx", config.n_positions);
  }
  read_int(json, source, "n_embd", config.n_embd);
  read_int(json, source, "n_layer", config.n_layer);
  read_int(json, source, "n_head", config.n_head);
  if (json.contains("n_inner") && !json.at("n_inner").is_null()) {
    int64_t inner = 0;
    read_int(json, source, "n_inner", inner);
    config.n_inner = inner;
  }
  read_string(json, source, "activation_function", config.activation_function);
  read_double(json, source, "layer_norm_epsilon", config.layer_norm_epsilon);
  read_double(json, source, "resid_pdrop", config.resid_pdrop);
  read_double(json, source, "embd_pdrop", config.embd_pdrop);
  read_double(json, source, "attn_pdrop", config.attn_pdrop);
  read_double(json, source, "initializer_range", config.initializer_range);
  read_bool(json, source, "scale_attn_weights", config.scale_attn_weights);
  read_bool(json, source, "scale_attn_by_inverse_layer_idx",
            config.scale_attn_by_inverse_layer_idx);
  read_bool(json, source, "tie_word_embeddings", config.tie_word_embeddings);
  if (json.contains("bos_token_id") && !json.at("bos_token_id").is_null()) {
    read_int(json, source, "bos_token_id", config.bos_token_id);
  }
  if (json.contains("eos_token_id") && !json.at("eos_token_id").is_null()) {
    read_int(json, source, "eos_token_id", config.eos_token_id);
  }
  if (json.contains("torch_dtype") && !json.at("torch_dtype").is_null()) {
    read_string(json, source, "torch_dtype", config.torch_dtype);
  }
  // Options that change the computation and that this implementation does not have.
  bool cross_attention = false;
  read_bool(json, source, "add_cross_attention", cross_attention);
  if (cross_attention) fail(source, "add_cross_attention: true is not supported");
  config.validate(source);
  return config;
}

nlohmann::json GPT2Config::to_json() const {
  // Key set of transformers' GPT2Config.to_dict() for the released checkpoints.
  nlohmann::json json = {
      {"activation_function", activation_function},
      {"architectures", {"GPT2LMHeadModel"}},
      {"attn_pdrop", attn_pdrop},
      {"bos_token_id", bos_token_id},
      {"embd_pdrop", embd_pdrop},
      {"eos_token_id", eos_token_id},
      {"initializer_range", initializer_range},
      {"layer_norm_epsilon", layer_norm_epsilon},
      {"model_type", "gpt2"},
      {"n_ctx", n_positions},
      {"n_embd", n_embd},
      {"n_head", n_head},
      {"n_inner", nullptr},
      {"n_layer", n_layer},
      {"n_positions", n_positions},
      {"reorder_and_upcast_attn", false},
      {"resid_pdrop", resid_pdrop},
      {"scale_attn_by_inverse_layer_idx", scale_attn_by_inverse_layer_idx},
      {"scale_attn_weights", scale_attn_weights},
      {"summary_activation", nullptr},
      {"summary_first_dropout", 0.1},
      {"summary_proj_to_labels", true},
      {"summary_type", "cls_index"},
      {"summary_use_proj", true},
      {"tie_word_embeddings", tie_word_embeddings},
      {"torch_dtype", torch_dtype},
      {"use_cache", true},
      {"vocab_size", vocab_size},
  };
  if (n_inner) json["n_inner"] = *n_inner;
  return json;
}

GPT2Config GPT2Config::preset(const std::string& name) {
  auto it = presets().find(name);
  if (it == presets().end()) {
    std::string known;
    for (const auto& entry : presets())
      known += (known.empty() ? "" : ", ") + entry.first;
    throw Error(kGpt2ConfigScope, "unknown GPT-2 preset \"" + name + "\" (known: " + known + ")");
  }
  return it->second();
}

std::vector<std::string> GPT2Config::preset_names() {
  std::vector<std::string> names;
  for (const auto& entry : presets())
    names.push_back(entry.first);
  return names;
}

}  // namespace tailor
