#include "models/tokenizer/tokenizer_json.h"

#include <climits>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "models/tokenizer/byte_level.h"

namespace tailor::tokenizer {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

Error tokenizer_error(const std::string& message) {
  return Error("tokenizer", message);
}

// "file: key" for error messages.
struct Where {
  std::string file;
  std::string key;
  std::string str() const { return file + ": " + key; }
  Where operator/(const std::string& child) const {
    return {file, key.empty() ? child : key + "." + child};
  }
  Where operator[](size_t i) const { return {file, key + "[" + std::to_string(i) + "]"}; }
};

json parse_json_file(const fs::path& path) {
  const std::string text = read_file(path);
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    throw tokenizer_error(path.string() + ": invalid JSON: " + e.what());
  }
}

std::string brief(const json& j) {
  std::string s = j.dump();
  return s.size() > 200 ? s.substr(0, 200) + "..." : s;
}

const json& member(const json& object, const char* key, const Where& where) {
  if (!object.contains(key)) throw tokenizer_error((where / key).str() + ": missing");
  return object[key];
}

bool get_bool(const json& object, const char* key, bool fallback, const Where& where) {
  if (!object.contains(key) || object[key].is_null()) return fallback;
  if (!object[key].is_boolean())
    throw tokenizer_error((where / key).str() + ": expected true or false, got " +
                          brief(object[key]));
  return object[key].get<bool>();
}

std::string get_string(const json& object, const char* key, const Where& where) {
  const json& value = member(object, key, where);
  if (!value.is_string())
    throw tokenizer_error((where / key).str() + ": expected a string, got " + brief(value));
  return value.get<std::string>();
}

// A string of exactly one Unicode character (HF's `char` fields).
std::string get_char(const json& object, const char* key, const Where& where) {
  const std::string s = get_string(object, key, where);
  char32_t cp = 0;
  if (s.empty() || byte_level::decode_utf8(s, 0, cp) != s.size())
    throw tokenizer_error((where / key).str() + ": expected one character, got " + json(s).dump());
  return s;
}

size_t get_count(const json& object, const char* key, const Where& where) {
  const json& value = member(object, key, where);
  if (!value.is_number_integer() || value.get<int64_t>() < 0)
    throw tokenizer_error((where / key).str() + ": expected a non-negative integer, got " +
                          brief(value));
  return value.get<size_t>();
}

std::string type_of(const json& component, const Where& where) {
  if (!component.is_object())
    throw tokenizer_error(where.str() + ": expected an object or null, got " + brief(component));
  return get_string(component, "type", where);
}

Error unsupported(const Where& where, const std::string& type) {
  return tokenizer_error((where / "type").str() + ": unsupported " + json(type).dump());
}

int32_t parse_id(const json& value, const std::string& where) {
  if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > INT32_MAX)
    throw tokenizer_error(where + ": expected a non-negative integer token id, got " +
                          value.dump());
  return value.get<int32_t>();
}

void read_vocab_object(const json& vocab, const std::string& where, TokenizerSpec& spec) {
  if (!vocab.is_object())
    throw tokenizer_error(where + ": expected an object {token: id}, got " + vocab.type_name());
  spec.vocab.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items())
    spec.vocab.emplace(token, parse_id(id, where + " key \"" + token + "\""));
}

// Splits "a b" into its two tokens (HF and OpenAI both split merges on a single space).
bool split_merge(std::string_view line, std::pair<std::string, std::string>& merge) {
  const size_t space = line.find(' ');
  if (space == std::string_view::npos || space == 0 || space + 1 == line.size() ||
      line.find(' ', space + 1) != std::string_view::npos)
    return false;
  merge = {std::string(line.substr(0, space)), std::string(line.substr(space + 1))};
  return true;
}

// HF's Replace pattern: {"String": s} (a {"Regex": r} pattern is refused).
std::string read_pattern(const json& component, const Where& where) {
  const json& pattern = member(component, "pattern", where);
  if (!pattern.is_object() || pattern.size() != 1 || !pattern.contains("String") ||
      !pattern["String"].is_string())
    throw tokenizer_error((where / "pattern").str() +
                          ": only {\"String\": ...} is supported, got " + brief(pattern));
  return pattern["String"].get<std::string>();
}

AddedToken read_added_token(const json& entry, const Where& where, int32_t id) {
  if (!entry.is_object()) throw tokenizer_error(where.str() + ": expected an object");
  AddedToken t;
  t.id = id;
  t.content = get_string(entry, "content", where);
  if (t.content.empty()) throw tokenizer_error((where / "content").str() + ": empty");
  t.special = get_bool(entry, "special", false, where);
  t.single_word = get_bool(entry, "single_word", false, where);
  t.lstrip = get_bool(entry, "lstrip", false, where);
  t.rstrip = get_bool(entry, "rstrip", false, where);
  t.normalized = get_bool(entry, "normalized", !t.special, where);  // HF's default
  return t;
}

void read_normalizer(const json& n, const Where& where, TokenizerSpec& spec) {
  if (n.is_null()) return;
  const std::string type = type_of(n, where);
  if (type == "Sequence") {
    const json& members = member(n, "normalizers", where);
    if (!members.is_array())
      throw tokenizer_error((where / "normalizers").str() + ": expected an array");
    for (size_t i = 0; i < members.size(); ++i)
      read_normalizer(members[i], (where / "normalizers")[i], spec);
  } else if (type == "Prepend") {
    spec.normalizers.push_back(
        {NormalizerStep::Kind::kPrepend, "", get_string(n, "prepend", where)});
  } else if (type == "Replace") {
    NormalizerStep step{NormalizerStep::Kind::kReplace, read_pattern(n, where),
                        get_string(n, "content", where)};
    if (!step.pattern.empty()) spec.normalizers.push_back(step);  // HF: "" matches nothing
  } else {
    throw unsupported(where, type);
  }
}

// Metaspace's fields, shared by the pre-tokenizer and the decoder (HF's MetaspaceHelper):
// prepend_scheme defaults to "always"; add_prefix_space false means "never".
MetaspaceOptions read_metaspace(const json& m, const Where& where) {
  MetaspaceOptions options;
  options.replacement = get_char(m, "replacement", where);
  const bool has_scheme = m.contains("prepend_scheme") && !m["prepend_scheme"].is_null();
  if (has_scheme) {
    const std::string scheme = get_string(m, "prepend_scheme", where);
    if (scheme == "first") {
      options.prepend_scheme = PrependScheme::kFirst;
    } else if (scheme == "always") {
      options.prepend_scheme = PrependScheme::kAlways;
    } else if (scheme == "never") {
      options.prepend_scheme = PrependScheme::kNever;
    } else {
      throw tokenizer_error((where / "prepend_scheme").str() +
                            ": expected \"first\", \"always\" or \"never\", got " +
                            json(scheme).dump());
    }
  }
  if (!get_bool(m, "add_prefix_space", true, where)) {
    if (has_scheme && options.prepend_scheme != PrependScheme::kNever)
      throw tokenizer_error((where / "add_prefix_space").str() +
                            ": false does not match prepend_scheme (HF refuses this too)");
    options.prepend_scheme = PrependScheme::kNever;
  }
  options.split = get_bool(m, "split", true, where);
  return options;
}

void read_pre_tokenizer(const json& p, const Where& where, TokenizerSpec& spec) {
  if (p.is_null()) {
    spec.pre_tokenizer = PreTokenizerKind::kNone;
    return;
  }
  const std::string type = type_of(p, where);
  if (type == "Sequence") {
    const json& members = member(p, "pretokenizers", where);
    if (!members.is_array())
      throw tokenizer_error((where / "pretokenizers").str() + ": expected an array");
    for (size_t i = 0; i < members.size(); ++i)
      read_pre_tokenizer(members[i], (where / "pretokenizers")[i], spec);  // checks each type
    if (members.size() != 1)
      throw tokenizer_error((where / "pretokenizers").str() +
                            ": only a sequence of one pre-tokenizer is supported, got " +
                            std::to_string(members.size()));
  } else if (type == "ByteLevel") {
    // GPT-2's form only: add_prefix_space would prepend a space to every piece.
    if (get_bool(p, "add_prefix_space", false, where))
      throw tokenizer_error((where / "add_prefix_space").str() +
                            ": only false is supported (GPT-2)");
    if (!get_bool(p, "use_regex", true, where))
      throw tokenizer_error((where / "use_regex").str() + ": only true is supported (GPT-2)");
    spec.pre_tokenizer = PreTokenizerKind::kByteLevel;
  } else if (type == "Metaspace") {
    spec.pre_tokenizer = PreTokenizerKind::kMetaspace;
    spec.metaspace = read_metaspace(p, where);
  } else {
    throw unsupported(where, type);
  }
}

// TemplateProcessing's "single" template: the special tokens' ids before and after $A.
void read_template(const json& p, const Where& where, std::vector<int32_t>& prefix,
                   std::vector<int32_t>& suffix) {
  const json& single = member(p, "single", where);
  const json& special = p.value("special_tokens", json::object());
  if (!single.is_array()) throw tokenizer_error((where / "single").str() + ": expected an array");
  bool seen_a = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const Where at = (where / "single")[i];
    const json& item = single[i];
    if (item.is_object() && item.contains("Sequence")) {
      const json& seq = item["Sequence"];
      if (!seq.is_object() || seq.value("id", json()) != json("A") || seen_a)
        throw tokenizer_error(at.str() + ": expected the sequence $A once, got " + brief(item));
      seen_a = true;
    } else if (item.is_object() && item.contains("SpecialToken")) {
      const std::string name = get_string(item["SpecialToken"], "id", at / "SpecialToken");
      const Where entry = where / "special_tokens" / name;
      if (!special.is_object() || !special.contains(name))
        throw tokenizer_error(entry.str() + ": missing (used by " + at.str() + ")");
      const json& ids = member(special[name], "ids", entry);
      if (!ids.is_array()) throw tokenizer_error((entry / "ids").str() + ": expected an array");
      for (size_t k = 0; k < ids.size(); ++k)
        (seen_a ? suffix : prefix).push_back(parse_id(ids[k], (entry / "ids")[k].str()));
    } else {
      throw tokenizer_error(at.str() + ": expected {\"SpecialToken\": ...} or " +
                            "{\"Sequence\": ...}, got " + brief(item));
    }
  }
  if (!seen_a) throw tokenizer_error((where / "single").str() + ": has no sequence $A");
}

void read_post_processor(const json& p, const Where& where, TokenizerSpec& spec) {
  if (p.is_null()) return;
  const std::string type = type_of(p, where);
  if (type == "ByteLevel") return;  // only trims offsets; ids are unchanged
  if (type == "TemplateProcessing") {
    // Applied after what came before it in a Sequence: its tokens go outside.
    std::vector<int32_t> prefix, suffix;
    read_template(p, where, prefix, suffix);
    prefix.insert(prefix.end(), spec.template_prefix.begin(), spec.template_prefix.end());
    spec.template_prefix = std::move(prefix);
    spec.template_suffix.insert(spec.template_suffix.end(), suffix.begin(), suffix.end());
  } else if (type == "Sequence") {
    const json& members = member(p, "processors", where);
    if (!members.is_array())
      throw tokenizer_error((where / "processors").str() + ": expected an array");
    for (size_t i = 0; i < members.size(); ++i)
      read_post_processor(members[i], (where / "processors")[i], spec);
  } else {
    throw unsupported(where, type);
  }
}

void read_decoder(const json& d, const Where& where, std::vector<DecoderStep>& steps) {
  const std::string type = type_of(d, where);
  DecoderStep step;
  if (type == "Sequence") {
    const json& members = member(d, "decoders", where);
    if (!members.is_array())
      throw tokenizer_error((where / "decoders").str() + ": expected an array");
    for (size_t i = 0; i < members.size(); ++i)
      read_decoder(members[i], (where / "decoders")[i], steps);
    return;
  } else if (type == "Replace") {
    step.kind = DecoderStep::Kind::kReplace;
    step.pattern = read_pattern(d, where);
    step.content = get_string(d, "content", where);
    if (step.pattern.empty()) return;  // HF: "" matches nothing
  } else if (type == "ByteFallback") {
    step.kind = DecoderStep::Kind::kByteFallback;
  } else if (type == "Fuse") {
    step.kind = DecoderStep::Kind::kFuse;
  } else if (type == "Strip") {
    step.kind = DecoderStep::Kind::kStrip;
    step.content = get_char(d, "content", where);
    step.start = get_count(d, "start", where);
    step.stop = get_count(d, "stop", where);
  } else if (type == "ByteLevel") {
    step.kind = DecoderStep::Kind::kByteLevel;
  } else if (type == "Metaspace") {
    step.kind = DecoderStep::Kind::kMetaspace;
    step.metaspace = read_metaspace(d, where);
  } else {
    throw unsupported(where, type);
  }
  steps.push_back(step);
}

void read_model(const json& model, const Where& where, TokenizerSpec& spec) {
  if (!model.is_object()) throw tokenizer_error(where.str() + ": expected an object");
  if (model.contains("type") && model["type"] != json("BPE"))
    throw tokenizer_error((where / "type").str() + ": expected \"BPE\", got " +
                          brief(model["type"]));
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && !model[key].is_null() && model[key] != json(""))
      throw tokenizer_error((where / key).str() + ": only null or \"\" is supported");
  }
  if (model.contains("dropout") && !model["dropout"].is_null() && model["dropout"] != json(0.0))
    throw tokenizer_error((where / "dropout").str() + ": only null is supported");
  spec.ignore_merges = get_bool(model, "ignore_merges", false, where);
  spec.byte_fallback = get_bool(model, "byte_fallback", false, where);
  spec.fuse_unk = get_bool(model, "fuse_unk", false, where);
  if (model.contains("unk_token") && !model["unk_token"].is_null())
    spec.unk_token = get_string(model, "unk_token", where);

  read_vocab_object(member(model, "vocab", where), (where / "vocab").str(), spec);
  const json& merges = member(model, "merges", where);
  if (!merges.is_array()) throw tokenizer_error((where / "merges").str() + ": expected an array");
  spec.merges.reserve(merges.size());
  spec.merge_where.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string at = (where / "merges")[i].str();
    const json& m = merges[i];
    std::pair<std::string, std::string> merge;
    bool ok = false;
    if (m.is_string()) {
      ok = split_merge(m.get_ref<const std::string&>(), merge);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merge = {m[0].get<std::string>(), m[1].get<std::string>()};
      ok = !merge.first.empty() && !merge.second.empty();
    }
    if (!ok) throw tokenizer_error(at + ": expected \"a b\" or [\"a\", \"b\"], got " + brief(m));
    spec.merges.push_back(std::move(merge));
    spec.merge_where.push_back(at);
  }
}

// A special token in tokenizer_config.json: "<s>", {"content": "<s>", ...} or null.
std::optional<std::string> read_config_token(const json& config, const char* key,
                                             const Where& where) {
  if (!config.contains(key) || config[key].is_null()) return std::nullopt;
  const json& value = config[key];
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string())
    return value["content"].get<std::string>();
  throw tokenizer_error((where / key).str() + ": expected a string or {\"content\": ...}, got " +
                        brief(value));
}

}  // namespace

void read_vocab_json(const fs::path& path, TokenizerSpec& spec) {
  read_vocab_object(parse_json_file(path), path.string(), spec);
}

void read_merges_txt(const fs::path& path, TokenizerSpec& spec) {
  const std::string text = read_file(path);
  std::vector<std::string_view> lines;
  for (size_t pos = 0; pos <= text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);  // CRLF files
    lines.push_back(line);
    pos = end + 1;
  }
  while (!lines.empty() && lines.back().empty())
    lines.pop_back();  // trailing blank lines
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string where = path.string() + ":" + std::to_string(i + 1);
    if (i == 0 && lines[i].substr(0, 8) == "#version") continue;
    std::pair<std::string, std::string> merge;
    if (!split_merge(lines[i], merge))
      throw tokenizer_error(where + ": expected two tokens separated by one space, got \"" +
                            std::string(lines[i]) + "\"");
    spec.merges.push_back(std::move(merge));
    spec.merge_where.push_back(where);
  }
}

void read_tokenizer_json(const fs::path& path, TokenizerSpec& spec) {
  spec.tokenizer_json_text = read_file(path);
  spec.tokenizer_json_path = path.string();
  json root;
  try {
    root = json::parse(spec.tokenizer_json_text);
  } catch (const json::parse_error& e) {
    throw tokenizer_error(path.string() + ": invalid JSON: " + e.what());
  }
  const Where top{path.string(), ""};
  if (!root.is_object()) throw tokenizer_error(path.string() + ": expected a JSON object");

  read_model(member(root, "model", top), top / "model", spec);
  read_normalizer(root.value("normalizer", json()), top / "normalizer", spec);
  read_pre_tokenizer(root.value("pre_tokenizer", json()), top / "pre_tokenizer", spec);
  read_post_processor(root.value("post_processor", json()), top / "post_processor", spec);
  const json decoder = root.value("decoder", json());
  if (decoder.is_null()) {
    spec.decoder = std::nullopt;
  } else {
    spec.decoder.emplace();
    read_decoder(decoder, top / "decoder", *spec.decoder);
  }

  const json added = root.value("added_tokens", json());
  if (!added.is_null()) {
    if (!added.is_array())
      throw tokenizer_error((top / "added_tokens").str() + ": expected an array");
    for (size_t i = 0; i < added.size(); ++i) {
      const Where at = (top / "added_tokens")[i];
      spec.added.push_back(
          read_added_token(added[i], at, parse_id(member(added[i], "id", at), (at / "id").str())));
    }
  }
}

void read_tokenizer_config(const fs::path& path, TokenizerSpec& spec) {
  const json config = parse_json_file(path);
  spec.tokenizer_config_text = read_file(path);
  const Where top{path.string(), ""};
  if (!config.is_object()) throw tokenizer_error(path.string() + ": expected a JSON object");
  if (config.contains("model_max_length")) {
    const json& m = config["model_max_length"];
    if (!m.is_number() || m.get<double>() < 1)
      throw tokenizer_error((top / "model_max_length").str() +
                            ": expected a positive number, got " + m.dump());
    // HF writes 1e30 for "no limit".
    spec.model_max_length =
        m.get<double>() >= 9.2e18 ? INT64_MAX : static_cast<int64_t>(m.get<double>());
  }
  if (config.contains("tokenizer_class") && !config["tokenizer_class"].is_null())
    spec.tokenizer_class = get_string(config, "tokenizer_class", top);
  const bool llama =
      spec.tokenizer_class == "LlamaTokenizer" || spec.tokenizer_class == "LlamaTokenizerFast";
  if (llama) {  // LlamaTokenizerFast's defaults
    spec.eos_token = "</s>";
    spec.bos_token = "<s>";
    spec.config_unk_token = "<unk>";
  }
  if (auto eos = read_config_token(config, "eos_token", top)) spec.eos_token = *eos;
  for (auto [key, field] :
       {std::pair{"bos_token", &spec.bos_token}, std::pair{"pad_token", &spec.pad_token},
        std::pair{"unk_token", &spec.config_unk_token}}) {
    if (config.contains(key)) *field = read_config_token(config, key, top);
  }
  if (config.contains("add_bos_token"))
    spec.add_bos_token = get_bool(config, "add_bos_token", true, top);
  if (config.contains("add_eos_token"))
    spec.add_eos_token = get_bool(config, "add_eos_token", false, top);
  if (llama && config.contains("add_prefix_space") && !config["add_prefix_space"].is_null())
    throw tokenizer_error((top / "add_prefix_space").str() +
                          ": LlamaTokenizerFast rebuilds the tokenizer from the sentencepiece "
                          "model when it is set; not supported");
  if (config.contains("added_tokens_decoder")) {
    const json& decoder = config["added_tokens_decoder"];
    if (!decoder.is_object())
      throw tokenizer_error((top / "added_tokens_decoder").str() +
                            ": expected an object {id: token}");
    for (const auto& [key, entry] : decoder.items()) {
      const Where at = top / "added_tokens_decoder" / key;
      int64_t id = -1;
      try {
        size_t used = 0;
        id = std::stoll(key, &used);
        if (used != key.size()) id = -1;
      } catch (const std::exception&) {
      }
      if (id < 0 || id > INT32_MAX)
        throw tokenizer_error(at.str() + ": expected a non-negative integer id as the key");
      spec.added.push_back(read_added_token(entry, at, int32_t(id)));
    }
  }
}

}  // namespace tailor::tokenizer
