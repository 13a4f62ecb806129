#include "models/mistral/mistral_config.h"

#include <cmath>
#include <functional>
#include <map>
#include <sstream>

#include "common/error.h"

namespace tailor {
namespace {

const char* kMistralConfigScope = "config";

std::string describe_value(const nlohmann::json& value) {
  std::string text = value.dump();
  return text.size() > 40 ? text.substr(0, 37) + "..." : text;
}

[[noreturn]] void config_fail(const std::string& source, const std::string& message) {
  throw Error(kMistralConfigScope, source + ": " + message);
}

// Typed readers: a present key of the wrong type is an error naming the key (`path`, which may be
// nested, e.g. "rope_parameters.rope_theta"); an absent key keeps the default.
void read_int(const nlohmann::json& json, const std::string& source, const std::string& key,
              int64_t& out, const std::string& path = "") {
  if (!json.contains(key)) return;
  const auto& value = json.at(key);
  if (!value.is_number_integer()) {
    config_fail(source, (path.empty() ? key : path) + ": expected an integer, got " +
                            describe_value(value));
  }
  out = value.get<int64_t>();
}

// null => std::nullopt, absent => the default.
void read_optional_int(const nlohmann::json& json, const std::string& source,
                       const std::string& key, std::optional<int64_t>& out) {
  if (!json.contains(key)) return;
  if (json.at(key).is_null()) {
    out.reset();
    return;
  }
  int64_t value = 0;
  read_int(json, source, key, value);
  out = value;
}

void read_double(const nlohmann::json& json, const std::string& source, const std::string& key,
                 double& out, const std::string& path = "") {
  if (!json.contains(key)) return;
  const auto& value = json.at(key);
  if (!value.is_number()) {
    config_fail(source,
                (path.empty() ? key : path) + ": expected a number, got " + describe_value(value));
  }
  out = value.get<double>();
}

void read_bool(const nlohmann::json& json, const std::string& source, const std::string& key,
               bool& out) {
  if (!json.contains(key)) return;
  const auto& value = json.at(key);
  if (!value.is_boolean())
    config_fail(source, key + ": expected true or false, got " + describe_value(value));
  out = value.get<bool>();
}

void read_string(const nlohmann::json& json, const std::string& source, const std::string& key,
                 std::string& out) {
  if (!json.contains(key)) return;
  const auto& value = json.at(key);
  if (!value.is_string())
    config_fail(source, key + ": expected a string, got " + describe_value(value));
  out = value.get<std::string>();
}

std::string format_number(double value) {
  std::ostringstream os;
  os << value;
  return os.str();
}

// RoPE settings in `rope_parameters` (newest transformers) or `rope_scaling` (older): only the
// default rotary embedding is implemented, so any scaling type is refused. Returns the
// rope_theta found inside, if any.
std::optional<double> read_rope_block(const nlohmann::json& json, const std::string& source,
                                      const std::string& key) {
  if (!json.contains(key) || json.at(key).is_null()) return std::nullopt;
  const auto& block = json.at(key);
  if (!block.is_object())
    config_fail(source, key + ": expected an object, got " + describe_value(block));
  for (const auto& item : block.items()) {
    if (item.value().is_object()) {
      config_fail(source,
                  key + "." + item.key() +
                      ": per-layer-type RoPE parameters are not supported (tailor implements "
                      "one default RoPE for every layer)");
    }
  }
  for (const char* type_key : {"rope_type", "type"}) {
    if (!block.contains(type_key)) continue;
    const auto& type = block.at(type_key);
    if (!type.is_string()) {
      config_fail(source,
                  key + "." + type_key + ": expected a string, got " + describe_value(type));
    }
    if (type.get<std::string>() != "default") {
      config_fail(source, key + "." + type_key + ": unsupported RoPE type " + describe_value(type) +
                              " (tailor implements only \"default\", unscaled RoPE)");
    }
  }
  if (!block.contains("rope_theta")) return std::nullopt;
  double theta = 0;
  read_double(block, source, "rope_theta", theta, key + ".rope_theta");
  return theta;
}

const std::map<std::string, std::function<MistralConfig()>>& mistral_presets() {
  static const std::map<std::string, std::function<MistralConfig()>> table = {
      {"mistral-7b", mistral_7b},
      {"mistral-tiny", mistral_tiny},
  };
  return table;
}

}  // namespace

MistralConfig mistral_7b() {
  MistralConfig config;
  config.vocab_size = 32000;
  config.hidden_size = 4096;
  config.intermediate_size = 14336;
  config.num_hidden_layers = 32;
  config.num_attention_heads = 32;
  config.num_key_value_heads = 8;
  config.max_position_embeddings = 32768;
  config.rms_norm_eps = 1e-5;
  config.rope_theta = 10000.0;
  config.sliding_window = 4096;
  config.torch_dtype = "bfloat16";
  return config;
}

MistralConfig mistral_tiny() {
  MistralConfig config;
  config.vocab_size = 32000;
  config.hidden_size = 64;
  config.intermediate_size = 128;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 4;
  config.num_key_value_heads = 2;
  config.max_position_embeddings = 512;
  config.rms_norm_eps = 1e-5;
  config.rope_theta = 10000.0;
  config.sliding_window = std::nullopt;
  return config;
}

void MistralConfig::validate(const std::string& source) const {
  auto positive = [&](const char* key, int64_t value) {
    if (value <= 0)
      config_fail(source, std::string(key) + " (" + std::to_string(value) + ") must be > 0");
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("num_key_value_heads", num_key_value_heads);
  positive("max_position_embeddings", max_position_embeddings);
  if (head_dim) positive("head_dim", *head_dim);
  if (num_attention_heads % num_key_value_heads != 0) {
    config_fail(source, "num_attention_heads (" + std::to_string(num_attention_heads) +
                            ") must be divisible by num_key_value_heads (" +
                            std::to_string(num_key_value_heads) + ")");
  }
  const int64_t D = attention_head_dim();
  if (D <= 0 || D % 2 != 0) {
    // rotate_half pairs dimension i with i + D/2, so D must be even.
    config_fail(source, std::string(head_dim ? "head_dim" : "hidden_size / num_attention_heads") +
                            " (" + std::to_string(D) + ") must be a positive even number for RoPE");
  }
  if (hidden_act != "silu") {
    config_fail(source,
                "hidden_act: unsupported \"" + hidden_act + "\" (tailor implements \"silu\")");
  }
  auto positive_real = [&](const char* key, double value) {
    if (!(value > 0) || !std::isfinite(value)) {
      config_fail(source,
                  std::string(key) + " (" + format_number(value) + ") must be a positive number");
    }
  };
  positive_real("rms_norm_eps", rms_norm_eps);
  positive_real("rope_theta", rope_theta);
  if (!(initializer_range >= 0) || !std::isfinite(initializer_range)) {
    config_fail(source,
                "initializer_range (" + format_number(initializer_range) + ") must be >= 0");
  }
  if (!(attention_dropout >= 0.0 && attention_dropout < 1.0)) {
    config_fail(source,
                "attention_dropout (" + format_number(attention_dropout) + ") must be in [0, 1)");
  }
  if (sliding_window) positive("sliding_window", *sliding_window);
  if (pad_token_id && (*pad_token_id < -vocab_size || *pad_token_id >= vocab_size)) {
    // It becomes nn.Embedding's padding_idx, which must index the table (negative from the end).
    config_fail(source, "pad_token_id (" + std::to_string(*pad_token_id) + ") must lie in [-" +
                            std::to_string(vocab_size) + ", " + std::to_string(vocab_size) + ")");
  }
  if (torch_dtype != "float32" && torch_dtype != "bfloat16" && torch_dtype != "float16" &&
      torch_dtype != "float64") {
    config_fail(source, "torch_dtype: unsupported \"" + torch_dtype +
                            "\" (expected \"float32\", \"bfloat16\", \"float16\" or \"float64\")");
  }
}

MistralConfig MistralConfig::from_json(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object()) config_fail(source, "expected a JSON object, got " + describe_value(json));
  if (json.contains("model_type") && json.at("model_type") != "mistral") {
    config_fail(source,
                "model_type: expected \"mistral\", got " + describe_value(json.at("model_type")));
  }
  MistralConfig config;
  read_int(json, source, "vocab_size", config.vocab_size);
  read_int(json, source, "hidden_size", config.hidden_size);
  read_int(json, source, "intermediate_size", config.intermediate_size);
  read_int(json, source, "num_hidden_layers", config.num_hidden_layers);
  read_int(json, source, "num_attention_heads", config.num_attention_heads);
  // HF: an absent key means 8, null means "as many as the query heads" (multi-head attention).
  if (json.contains("num_key_value_heads") && json.at("num_key_value_heads").is_null()) {
    config.num_key_value_heads = config.num_attention_heads;
  } else {
    read_int(json, source, "num_key_value_heads", config.num_key_value_heads);
  }
  read_optional_int(json, source, "head_dim", config.head_dim);
  read_string(json, source, "hidden_act", config.hidden_act);
  read_int(json, source, "max_position_embeddings", config.max_position_embeddings);
  read_double(json, source, "initializer_range", config.initializer_range);
  read_double(json, source, "rms_norm_eps", config.rms_norm_eps);

  // rope_theta: top level (transformers <= 4.56) or nested in rope_parameters (newer); both
  // present and different would leave the choice to the transformers version, so it is refused.
  std::optional<double> top_theta;
  if (json.contains("rope_theta")) {
    double theta = 0;
    read_double(json, source, "rope_theta", theta);
    top_theta = theta;
  }
  const std::optional<double> scaling_theta = read_rope_block(json, source, "rope_scaling");
  const std::optional<double> nested_theta = read_rope_block(json, source, "rope_parameters");
  const std::optional<double> inner_theta = nested_theta ? nested_theta : scaling_theta;
  if (top_theta && inner_theta && *top_theta != *inner_theta) {
    config_fail(source, "rope_theta (" + format_number(*top_theta) + ") disagrees with " +
                            (nested_theta ? "rope_parameters" : "rope_scaling") + ".rope_theta (" +
                            format_number(*inner_theta) + ")");
  }
  if (inner_theta) {
    config.rope_theta = *inner_theta;
  } else if (top_theta) {
    config.rope_theta = *top_theta;
  }

  read_optional_int(json, source, "sliding_window", config.sliding_window);
  read_double(json, source, "attention_dropout", config.attention_dropout);
  read_bool(json, source, "tie_word_embeddings", config.tie_word_embeddings);
  read_optional_int(json, source, "bos_token_id", config.bos_token_id);
  read_optional_int(json, source, "eos_token_id", config.eos_token_id);
  read_optional_int(json, source, "pad_token_id", config.pad_token_id);
  // Newest transformers write `dtype`, older ones `torch_dtype`.
  for (const char* key : {"torch_dtype", "dtype"}) {
    if (json.contains(key) && !json.at(key).is_null()) {
      read_string(json, source, key, config.torch_dtype);
      break;
    }
  }
  config.validate(source);
  return config;
}

nlohmann::json MistralConfig::to_json() const {
  // The key set of transformers' MistralConfig.to_dict() for the released checkpoints, with
  // head_dim explicit (MistralConfig reads it since 4.45; older versions compute the same value
  // whenever it equals hidden_size / num_attention_heads).
  nlohmann::json json = {
      {"architectures", {"MistralForCausalLM"}},
      {"attention_dropout", attention_dropout},
      {"bos_token_id", bos_token_id ? nlohmann::json(*bos_token_id) : nlohmann::json(nullptr)},
      {"eos_token_id", eos_token_id ? nlohmann::json(*eos_token_id) : nlohmann::json(nullptr)},
      {"head_dim", attention_head_dim()},
      {"hidden_act", hidden_act},
      {"hidden_size", hidden_size},
      {"initializer_range", initializer_range},
      {"intermediate_size", intermediate_size},
      {"max_position_embeddings", max_position_embeddings},
      {"model_type", "mistral"},
      {"num_attention_heads", num_attention_heads},
      {"num_hidden_layers", num_hidden_layers},
      {"num_key_value_heads", num_key_value_heads},
      {"rms_norm_eps", rms_norm_eps},
      {"rope_theta", rope_theta},
      {"sliding_window",
       sliding_window ? nlohmann::json(*sliding_window) : nlohmann::json(nullptr)},
      {"tie_word_embeddings", tie_word_embeddings},
      {"torch_dtype", torch_dtype},
      {"use_cache", true},
      {"vocab_size", vocab_size},
  };
  if (pad_token_id) json["pad_token_id"] = *pad_token_id;
  return json;
}

MistralConfig MistralConfig::preset(const std::string& name) {
  auto it = mistral_presets().find(name);
  if (it == mistral_presets().end()) {
    std::string known;
    for (const auto& entry : mistral_presets())
      known += (known.empty() ? "" : ", ") + entry.first;
    throw Error(kMistralConfigScope,
                "unknown Mistral preset \"" + name + "\" (known: " + known + ")");
  }
  return it->second();
}

std::vector<std::string> MistralConfig::preset_names() {
  std::vector<std::string> names;
  for (const auto& entry : mistral_presets())
    names.push_back(entry.first);
  return names;
}

}  // namespace tailor
