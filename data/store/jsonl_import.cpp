#include "data/store/jsonl_import.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "data/store/jsonl_lines.h"

namespace tailor::data {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using LineReader = JsonlReader;

std::optional<StoreKind> kind_from_keys(const json& object) {
  if (object.contains("chosen") && object.contains("rejected")) return StoreKind::pairs;
  if (object.contains("prompt") && object.contains("response")) return StoreKind::prompt_response;
  if (object.contains("text")) return StoreKind::text;
  return std::nullopt;
}

std::string required_keys(StoreKind kind) {
  std::string keys;
  for (const FieldSpec& spec : fields_of(kind))
    keys += (keys.empty() ? "\"" : ", \"") + spec.json_key + "\"";
  return keys;
}

const std::string& required_string(const json& object, const std::string& key, StoreKind kind,
                                   const LineReader& reader) {
  auto it = object.find(key);
  if (it == object.end()) {
    throw Error("data", reader.where() + ": missing key \"" + key + "\" (a " + kind_name(kind) +
                            " record needs " + required_keys(kind) + ")");
  }
  if (!it->is_string()) {
    throw Error("data", reader.where() + ": \"" + key + "\" must be a string, got " +
                            std::string(it->type_name()));
  }
  const std::string& value = it->get_ref<const std::string&>();
  if (value.empty())
    throw Error("data", reader.where() + ": \"" + key + "\" is empty; expected a non-empty string");
  return value;
}

std::string optional_user(const json& object, const LineReader& reader) {
  auto it = object.find("user");
  if (it == object.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_integer()) return it->dump();
  throw Error("data", reader.where() + ": \"user\" must be a string or an integer, got " +
                          std::string(it->type_name()));
}

// The optional "system" text of a prompt_response record ("" when absent or null).
std::string optional_system(const json& object, const LineReader& reader) {
  auto it = object.find("system");
  if (it == object.end() || it->is_null()) return "";
  if (!it->is_string()) {
    throw Error("data", reader.where() + ": \"system\" must be a string, got " +
                            std::string(it->type_name()));
  }
  return it->get<std::string>();
}

// Prints "<file>: N records (R records/s)" to stderr at most every few seconds.
class Progress {
 public:
  Progress(bool enabled, const fs::path& path) : enabled_(enabled), path_(path) {}
  void tick(int64_t records) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::seconds(5)) return;
    last_ = now;
    const double seconds = std::chrono::duration<double>(now - start_).count();
    std::fprintf(stderr, "[data] %s: %lld records (%.0f records/s)\n", path_.c_str(),
                 static_cast<long long>(records), records / std::max(seconds, 1e-9));
  }

 private:
  bool enabled_;
  fs::path path_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_ = start_;
};

}  // namespace

StoreKind detect_jsonl_kind(const fs::path& jsonl) {
  LineReader reader(jsonl);
  std::string line;
  if (!reader.next(line))
    throw Error("data", jsonl.string() + ": no records (the file is empty or blank)");
  const json object = reader.parse_object(line);
  if (auto kind = kind_from_keys(object)) return *kind;
  throw Error("data", reader.where() +
                          ": cannot tell the dataset kind; expected keys \"text\", or \"prompt\" + "
                          "\"response\", or "
                          "\"prompt\" + \"chosen\" + \"rejected\"");
}

StoreData tokenize_jsonl(const fs::path& jsonl, std::optional<StoreKind> kind,
                         const EncodeFn& encode, const ImportOptions& options) {
  StoreData data;
  data.kind = kind ? *kind : detect_jsonl_kind(jsonl);
  data.source = jsonl.string();
  data.tokenizer = options.tokenizer;
  const std::vector<FieldSpec>& fields = fields_of(data.kind);
  for (const FieldSpec& spec : fields) {
    data.ids[spec.field];
    if (options.keep_text) data.text[spec.json_key];
  }

  LineReader reader(jsonl);
  Progress progress(options.progress, jsonl);
  std::string line;
  int64_t records = 0;
  while (reader.next(line)) {
    const json object = reader.parse_object(line);
    // Validate the whole record before appending anything, so fields stay aligned.
    std::vector<const std::string*> texts;
    for (const FieldSpec& spec : fields)
      texts.push_back(&required_string(object, spec.json_key, data.kind, reader));
    const std::string user = data.kind == StoreKind::pairs ? optional_user(object, reader) : "";
    const std::string system =
        data.kind == StoreKind::prompt_response ? optional_system(object, reader) : "";
    if (!system.empty() && !options.encode_field_system) {
      throw Error("data", reader.where() +
                              ": \"system\" is given, but this reader encodes prompts without a "
                              "system text and would drop it; give the .jsonl to the sft stage, "
                              "whose data.template encodes it");
    }
    // HDF5 strings end at a NUL byte, so text that is stored must not contain one.
    for (size_t f = 0; f < fields.size(); ++f) {
      if (options.keep_text && texts[f]->find('\0') != std::string::npos) {
        throw Error(
            "data",
            reader.where() + ": \"" + fields[f].json_key +
                "\" contains a NUL character (\\u0000), which the store cannot keep as text; "
                "import without raw text");
      }
    }
    if (user.find('\0') != std::string::npos) {
      throw Error("data", reader.where() + ": \"user\" contains a NUL character (\\u0000)");
    }
    std::vector<std::vector<int32_t>> ids;
    for (size_t f = 0; f < fields.size(); ++f) {
      const std::string& key = fields[f].json_key;
      if (options.encode_field_system)
        ids.push_back(options.encode_field_system(key, *texts[f], system));
      else
        ids.push_back(options.encode_field ? options.encode_field(key, *texts[f])
                                           : encode(*texts[f]));
      if (ids.back().empty()) {
        throw Error("data",
                    reader.where() + ": \"" + fields[f].json_key + "\" encodes to no tokens");
      }
    }
    for (size_t f = 0; f < fields.size(); ++f) {
      data.ids[fields[f].field].push_back(ids[f]);
      if (options.keep_text) data.text[fields[f].json_key].push_back(*texts[f]);
    }
    if (data.kind == StoreKind::pairs) data.users.push_back(user);
    progress.tick(++records);
  }
  if (records == 0)
    throw Error("data", jsonl.string() + ": no records (the file is empty or blank)");
  data.validate();
  return data;
}

ImportSummary import_jsonl(const fs::path& jsonl, const fs::path& out_h5,
                           std::optional<StoreKind> kind, const EncodeFn& encode,
                           const ImportOptions& options) {
  const StoreData data = tokenize_jsonl(jsonl, kind, encode, options);
  write_store(out_h5, data);
  ImportSummary summary;
  summary.kind = data.kind;
  summary.count = data.count();
  for (const auto& [field, ragged] : data.ids)
    summary.tokens += ragged.total_tokens();
  return summary;
}

}  // namespace tailor::data
