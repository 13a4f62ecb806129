// tailor's tokenized dataset store: one HDF5 file per dataset, read whole into memory.
//
// On-disk layout (schema "tailor.store", version 1; N = record count):
//   attributes on "/":  schema = "tailor.store", schema_version = 1,
//                       kind = "text" | "prompt_response" | "pairs", count = N,
//                       source = the file imported from,
//                       tokenizer_vocab_size (0 = unknown), tokenizer_hash ("" = unknown)
//   /<field>/values    int32 [sum of lengths]  token ids of all records, concatenated
//   /<field>/offsets   int64 [N + 1]           record i is values[offsets[i] : offsets[i+1]]
//        fields by kind: text -> input_ids; prompt_response -> prompt_ids, response_ids;
//                        pairs -> prompt_ids, chosen_ids, rejected_ids
//   /text/<key>        UTF-8 strings [N]       raw text the ids came from (optional), one
//                                              dataset per JSON key ("text", "prompt", ...)
//   pairs only:
//   /user              UTF-8 strings [N]       the record's user id, "" when absent
//   /user_names        UTF-8 strings [U]       distinct non-empty user ids, sorted
//   /user_index        int32 [N]               index into user_names, -1 when absent
// Large datasets are chunked and deflate-compressed (see h5::DatasetLayout).
// Python: h5py.File(p)["input_ids/values"][o[i]:o[i+1]] with o = f["input_ids/offsets"][:].
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace tailor::data {

inline constexpr const char* kStoreSchema = "tailor.store";
inline constexpr int64_t kStoreSchemaVersion = 1;

enum class StoreKind { text, prompt_response, pairs };

// "text", "prompt_response", "pairs".
const char* kind_name(StoreKind kind);
// Inverse of kind_name; throws Error("data", ...) listing the valid names.
StoreKind parse_store_kind(const std::string& name);

// A ragged token field and the JSON key its text comes from.
struct FieldSpec {
  std::string field;     // e.g. "prompt_ids"
  std::string json_key;  // e.g. "prompt"
};
// The token fields of each kind, in record order (see the layout above).
const std::vector<FieldSpec>& fields_of(StoreKind kind);

// A read-only view of one record's ids.
struct IdSpan {
  const int32_t* ptr = nullptr;
  int64_t length = 0;
  const int32_t* begin() const { return ptr; }
  const int32_t* end() const { return ptr + length; }
  int64_t size() const { return length; }
  int32_t operator[](int64_t i) const { return ptr[i]; }
  std::vector<int32_t> to_vector() const { return {begin(), end()}; }
};

// Variable-length id sequences stored flat: record i is values[offsets[i] : offsets[i+1]].
class RaggedIds {
 public:
  RaggedIds() = default;  // no records: offsets == {0}
  // Throws Error("data", ...) unless offsets starts at 0, never decreases and ends at
  // values.size().
  RaggedIds(std::vector<int32_t> values, std::vector<int64_t> offsets);

  void push_back(const std::vector<int32_t>& ids);
  int64_t size() const { return static_cast<int64_t>(offsets_.size()) - 1; }
  int64_t length(int64_t i) const;
  IdSpan operator[](int64_t i) const;  // bounds-checked
  std::vector<int32_t> at(int64_t i) const { return (*this)[i].to_vector(); }
  int64_t total_tokens() const { return static_cast<int64_t>(values_.size()); }

  const std::vector<int32_t>& values() const { return values_; }
  const std::vector<int64_t>& offsets() const { return offsets_; }

 private:
  std::vector<int32_t> values_;
  std::vector<int64_t> offsets_{0};
};

// Which tokenizer produced the ids, so a store is not silently used with another vocabulary.
struct TokenizerIdentity {
  int64_t vocab_size = 0;  // 0 = unknown
  std::string hash;        // "" = unknown; see tokenizer_identity()
};
// vocab_size plus "fnv1a64:<16 hex digits>" over the contents of the tokenizer files found in
// `dir` (tokenizer.json, vocab.json, merges.txt, in that order, each prefixed by its name).
// Throws when `dir` holds none of them.
TokenizerIdentity tokenizer_identity(const std::filesystem::path& dir, int64_t vocab_size);

// Everything a store holds, in memory. `ids` has exactly the fields of `kind`; `text` is empty
// or holds one string per record for each JSON key of `kind`; `users` is empty for text and
// prompt_response stores and holds one entry per record ("" = none) for pairs.
struct StoreData {
  StoreKind kind = StoreKind::text;
  std::map<std::string, RaggedIds> ids;
  std::map<std::string, std::vector<std::string>> text;
  std::vector<std::string> users;
  std::string source;
  TokenizerIdentity tokenizer;

  // Record count (of the first field); 0 when no field is present.
  int64_t count() const;
  // Throws Error("data", ...) when fields are missing or have inconsistent record counts.
  void validate() const;
};

// Writes `data` to `path` atomically (temp file + rename): on any error no file is left at
// `path` and an existing file there is untouched.
void write_store(const std::filesystem::path& path, const StoreData& data);

// A store opened for reading (fully loaded into memory).
class Store {
 public:
  // Throws Error naming the file and what is wrong: missing, not an HDF5 file, not a tailor
  // store, schema_version newer than this build reads, inconsistent offsets.
  static Store open(const std::filesystem::path& path);
  // Wraps in-memory records (validated), e.g. a JSONL file tokenized without writing a store.
  static Store from_data(StoreData data);

  StoreKind kind() const { return data_.kind; }
  int64_t count() const { return data_.count(); }
  int64_t schema_version() const { return schema_version_; }
  const std::string& source() const { return data_.source; }
  const TokenizerIdentity& tokenizer() const { return data_.tokenizer; }
  const std::filesystem::path& path() const { return path_; }  // empty for from_data

  bool has_field(const std::string& field) const;
  // Throws naming the field and the kind's fields when absent.
  const RaggedIds& field(const std::string& field) const;
  std::vector<int32_t> ids(const std::string& field, int64_t record) const {
    return this->field(field).at(record);
  }
  IdSpan span(const std::string& field, int64_t record) const { return this->field(field)[record]; }

  // Raw text by JSON key ("text", "prompt", ...), when the store kept it.
  bool has_text() const { return !data_.text.empty(); }
  const std::string& text(const std::string& json_key, int64_t record) const;

  // Users (pairs stores): per-record id ("" = none), the sorted distinct ids, and per-record
  // index into them (-1 = none). Empty for other kinds.
  const std::vector<std::string>& users() const { return data_.users; }
  const std::vector<std::string>& user_names() const { return user_names_; }
  const std::vector<int32_t>& user_index() const { return user_index_; }

  const StoreData& data() const { return data_; }

 private:
  Store() = default;
  void build_user_table();

  std::filesystem::path path_;
  int64_t schema_version_ = kStoreSchemaVersion;
  StoreData data_;
  std::vector<std::string> user_names_;
  std::vector<int32_t> user_index_;
};

}  // namespace tailor::data
