#include "data/store/store.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <set>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/fnv1a.h"
#include "data/store/h5_file.h"

namespace tailor::data {
namespace fs = std::filesystem;

const char* kind_name(StoreKind kind) {
  switch (kind) {
    case StoreKind::text:
      return "text";
    case StoreKind::prompt_response:
      return "prompt_response";
    case StoreKind::pairs:
      return "pairs";
  }
  return "unknown";
}

StoreKind parse_store_kind(const std::string& name) {
  for (StoreKind kind : {StoreKind::text, StoreKind::prompt_response, StoreKind::pairs}) {
    if (name == kind_name(kind)) return kind;
  }
  throw Error("data",
              "unknown dataset kind '" + name + "', expected text, prompt_response or pairs");
}

const std::vector<FieldSpec>& fields_of(StoreKind kind) {
  static const std::vector<FieldSpec> text = {{"input_ids", "text"}};
  static const std::vector<FieldSpec> prompt_response = {{"prompt_ids", "prompt"},
                                                         {"response_ids", "response"}};
  static const std::vector<FieldSpec> pairs = {
      {"prompt_ids", "prompt"}, {"chosen_ids", "chosen"}, {"rejected_ids", "rejected"}};
  switch (kind) {
    case StoreKind::text:
      return text;
    case StoreKind::prompt_response:
      return prompt_response;
    case StoreKind::pairs:
      return pairs;
  }
  return text;
}

namespace {

// An Error's message without its "[scope] " tag, for re-throwing with more context.
std::string message_of(const Error& e) {
  const std::string what = e.what();
  const std::string tag = "[" + e.scope() + "] ";
  return what.rfind(tag, 0) == 0 ? what.substr(tag.size()) : what;
}

}  // namespace

// ---- RaggedIds ----------------------------------------------------------------------------

RaggedIds::RaggedIds(std::vector<int32_t> values, std::vector<int64_t> offsets)
    : values_(std::move(values)), offsets_(std::move(offsets)) {
  if (offsets_.empty() || offsets_.front() != 0)
    throw Error("data", "ragged offsets must start with 0");
  for (size_t i = 1; i < offsets_.size(); ++i) {
    if (offsets_[i] < offsets_[i - 1]) {
      throw Error("data", "ragged offsets decrease at entry " + std::to_string(i) + " (" +
                              std::to_string(offsets_[i - 1]) + " -> " +
                              std::to_string(offsets_[i]) + ")");
    }
  }
  if (offsets_.back() != static_cast<int64_t>(values_.size())) {
    throw Error("data", "last ragged offset " + std::to_string(offsets_.back()) +
                            " != number of values " + std::to_string(values_.size()));
  }
}

void RaggedIds::push_back(const std::vector<int32_t>& ids) {
  values_.insert(values_.end(), ids.begin(), ids.end());
  offsets_.push_back(static_cast<int64_t>(values_.size()));
}

int64_t RaggedIds::length(int64_t i) const {
  return (*this)[i].length;
}

IdSpan RaggedIds::operator[](int64_t i) const {
  if (i < 0 || i >= size()) {
    throw Error("data", "record " + std::to_string(i) + " out of range [0, " +
                            std::to_string(size()) + ")");
  }
  const auto begin = offsets_[static_cast<size_t>(i)];
  const auto end = offsets_[static_cast<size_t>(i) + 1];
  return IdSpan{values_.data() + begin, end - begin};
}

// ---- tokenizer identity -------------------------------------------------------------------

TokenizerIdentity tokenizer_identity(const fs::path& dir, int64_t vocab_size) {
  // FNV-1a 64: enough to tell vocabularies apart, not a security hash.
  Fnv1a64 h;
  auto mix = [&h](const std::string& bytes) { h.update(bytes); };
  bool any = false;
  for (const char* name : {"tokenizer.json", "vocab.json", "merges.txt"}) {
    const fs::path file = dir / name;
    if (!fs::is_regular_file(file)) continue;
    any = true;
    mix(std::string(name) + '\n');
    mix(read_file(file));
  }
  if (!any) {
    throw Error("data",
                dir.string() + ": no tokenizer files (tokenizer.json or vocab.json + merges.txt)");
  }
  return TokenizerIdentity{vocab_size, "fnv1a64:" + h.hex()};
}

// ---- StoreData ----------------------------------------------------------------------------

int64_t StoreData::count() const {
  const auto& fields = fields_of(kind);
  auto it = ids.find(fields.front().field);
  return it == ids.end() ? 0 : it->second.size();
}

void StoreData::validate() const {
  const int64_t n = count();
  for (const FieldSpec& spec : fields_of(kind)) {
    auto it = ids.find(spec.field);
    if (it == ids.end()) {
      throw Error("data",
                  std::string(kind_name(kind)) + " records lack the field '" + spec.field + "'");
    }
    if (it->second.size() != n) {
      throw Error("data", "field '" + spec.field + "' has " + std::to_string(it->second.size()) +
                              " records, expected " + std::to_string(n));
    }
  }
  if (ids.size() != fields_of(kind).size()) {
    throw Error("data", std::string(kind_name(kind)) + " records have unexpected extra fields");
  }
  if (!text.empty()) {
    for (const FieldSpec& spec : fields_of(kind)) {
      auto it = text.find(spec.json_key);
      if (it == text.end() || static_cast<int64_t>(it->second.size()) != n) {
        throw Error("data", "raw text '" + spec.json_key + "' is missing or does not have " +
                                std::to_string(n) + " entries");
      }
    }
  }
  const bool wants_users = kind == StoreKind::pairs;
  if (wants_users && static_cast<int64_t>(users.size()) != n) {
    throw Error("data", "pairs records need one user entry per record (" +
                            std::to_string(users.size()) + " for " + std::to_string(n) +
                            " records)");
  }
  if (!wants_users && !users.empty()) {
    throw Error("data", std::string(kind_name(kind)) + " records carry no user ids");
  }
}

// ---- writing ------------------------------------------------------------------------------

namespace {

// Distinct non-empty users, sorted, and each record's index into them (-1 = none).
void user_table(const std::vector<std::string>& users, std::vector<std::string>& names,
                std::vector<int32_t>& index) {
  std::set<std::string> distinct;
  for (const std::string& u : users) {
    if (!u.empty()) distinct.insert(u);
  }
  names.assign(distinct.begin(), distinct.end());
  index.clear();
  index.reserve(users.size());
  for (const std::string& u : users) {
    if (u.empty()) {
      index.push_back(-1);
    } else {
      index.push_back(
          static_cast<int32_t>(std::lower_bound(names.begin(), names.end(), u) - names.begin()));
    }
  }
}

}  // namespace

void write_store(const fs::path& path, const StoreData& data) {
  data.validate();
  write_atomic_with(path, [&](const fs::path& tmp) {
    h5::File file = h5::File::create(tmp);
    file.set_attribute("schema", std::string(kStoreSchema));
    file.set_attribute("schema_version", kStoreSchemaVersion);
    file.set_attribute("kind", std::string(kind_name(data.kind)));
    file.set_attribute("count", data.count());
    file.set_attribute("source", data.source);
    file.set_attribute("tokenizer_vocab_size", data.tokenizer.vocab_size);
    file.set_attribute("tokenizer_hash", data.tokenizer.hash);
    for (const FieldSpec& spec : fields_of(data.kind)) {
      const RaggedIds& ragged = data.ids.at(spec.field);
      file.write_int32(spec.field + "/values", ragged.values());
      file.write_int64(spec.field + "/offsets", ragged.offsets());
    }
    for (const auto& [key, strings] : data.text)
      file.write_strings("text/" + key, strings);
    if (data.kind == StoreKind::pairs) {
      std::vector<std::string> names;
      std::vector<int32_t> index;
      user_table(data.users, names, index);
      file.write_strings("user", data.users);
      file.write_strings("user_names", names);
      file.write_int32("user_index", index);
    }
    file.close();  // surfaces flush errors before the rename
  });
}

// ---- reading ------------------------------------------------------------------------------

Store Store::from_data(StoreData data) {
  data.validate();
  Store store;
  store.data_ = std::move(data);
  store.build_user_table();
  return store;
}

void Store::build_user_table() {
  user_table(data_.users, user_names_, user_index_);
}

Store Store::open(const fs::path& path) {
  h5::File file = h5::File::open_read_only(path);
  const std::string where = path.string() + ": ";
  if (!file.has_attribute("schema")) {
    throw Error("data", where +
                            "not a tailor dataset store (no 'schema' attribute; expected schema '" +
                            kStoreSchema + "')");
  }
  const std::string schema = file.string_attribute("schema");
  if (schema != kStoreSchema) {
    throw Error("data", where + "schema is '" + schema + "', expected '" + kStoreSchema + "'");
  }
  const int64_t version = file.int_attribute("schema_version");
  if (version > kStoreSchemaVersion) {
    throw Error("data", where + "schema_version " + std::to_string(version) +
                            " is newer than this build of tailor reads (" +
                            std::to_string(kStoreSchemaVersion) + "); upgrade tailor");
  }
  if (version < 1) throw Error("data", where + "invalid schema_version " + std::to_string(version));

  Store store;
  store.path_ = path;
  store.schema_version_ = version;
  StoreData& data = store.data_;
  try {
    data.kind = parse_store_kind(file.string_attribute("kind"));
  } catch (const Error& e) {
    throw Error("data", where + message_of(e));
  }
  data.source = file.string_attribute("source");
  data.tokenizer.vocab_size = file.int_attribute("tokenizer_vocab_size");
  data.tokenizer.hash = file.string_attribute("tokenizer_hash");
  const int64_t count = file.int_attribute("count");

  for (const FieldSpec& spec : fields_of(data.kind)) {
    if (!file.exists(spec.field + "/values") || !file.exists(spec.field + "/offsets")) {
      throw Error("data", where + std::string(kind_name(data.kind)) + " store lacks datasets " +
                              spec.field + "/values and " + spec.field + "/offsets");
    }
    std::vector<int64_t> offsets = file.read_int64(spec.field + "/offsets");
    if (static_cast<int64_t>(offsets.size()) != count + 1) {
      throw Error("data", where + spec.field + "/offsets has " + std::to_string(offsets.size()) +
                              " entries, expected count + 1 = " + std::to_string(count + 1));
    }
    try {
      data.ids.emplace(spec.field,
                       RaggedIds(file.read_int32(spec.field + "/values"), std::move(offsets)));
    } catch (const Error& e) {
      throw Error("data", where + spec.field + ": " + message_of(e));
    }
    if (file.exists("text/" + spec.json_key)) {
      data.text[spec.json_key] = file.read_strings("text/" + spec.json_key);
    }
  }
  if (data.kind == StoreKind::pairs) {
    data.users = file.read_strings("user");
    if (static_cast<int64_t>(data.users.size()) != count) {
      throw Error("data", where + "user has " + std::to_string(data.users.size()) +
                              " entries, expected " + std::to_string(count));
    }
  }
  try {
    data.validate();
  } catch (const Error& e) {
    throw Error("data", where + message_of(e));
  }
  store.build_user_table();
  // The stored table must agree with the per-record users it was derived from.
  if (data.kind == StoreKind::pairs && (file.read_strings("user_names") != store.user_names_ ||
                                        file.read_int32("user_index") != store.user_index_)) {
    throw Error("data", where + "user_names/user_index disagree with the per-record user dataset");
  }
  return store;
}

bool Store::has_field(const std::string& field) const {
  return data_.ids.count(field) > 0;
}

const RaggedIds& Store::field(const std::string& field) const {
  auto it = data_.ids.find(field);
  if (it == data_.ids.end()) {
    std::string names;
    for (const FieldSpec& spec : fields_of(data_.kind))
      names += (names.empty() ? "" : ", ") + spec.field;
    throw Error("data", (path_.empty() ? std::string("store") : path_.string()) + ": no field '" +
                            field + "' in a " + kind_name(data_.kind) + " store (fields: " + names +
                            ")");
  }
  return it->second;
}

const std::string& Store::text(const std::string& json_key, int64_t record) const {
  auto it = data_.text.find(json_key);
  if (it == data_.text.end()) {
    throw Error("data", (path_.empty() ? std::string("store") : path_.string()) +
                            ": no raw text '" + json_key + "'");
  }
  if (record < 0 || record >= static_cast<int64_t>(it->second.size())) {
    throw Error("data", "record " + std::to_string(record) + " out of range [0, " +
                            std::to_string(it->second.size()) + ")");
  }
  return it->second[static_cast<size_t>(record)];
}

}  // namespace tailor::data
