// JSONL -> tokenized records -> HDF5 store.
//
// One JSON object per line; blank lines are skipped; keys other than the ones below are
// ignored (so richer exports such as UltraFeedback rows import as they are).
//   text:             {"text": "..."}
//   prompt_response:  {"prompt": "...", "response": "..."}      (loss later on response only)
//   pairs:            {"prompt": "...", "chosen": "...", "rejected": "...", "user": "u1"?}
// Every text value must be a non-empty string; "user" is optional and may be a string or an
// integer (stored as its decimal string). A prompt_response record may also carry a "system"
// string (an instruction for a chat template's system turn, models/tokenizer/prompt_format.h;
// null or "" = none): it goes to the encoder of the prompt (ImportOptions.encode_field_system)
// and is not a field of the store, so a reader without such an encoder refuses a record that
// has one rather than drop it. Other kinds ignore "system" as any other key. Sequences are stored
// whole: truncation to a model's context happens when batching (data/sft/sft_dataset.h), never at
// import.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "data/store/store.h"

namespace tailor::data {

// The tokenizer as a function (text -> ids), so tests can pass a trivial encoder; the CLI
// passes tailor::Tokenizer::encode.
using EncodeFn = std::function<std::vector<int32_t>(const std::string&)>;

// Field-aware encoding: (json key, text) -> ids, for formats that treat a prompt differently from
// a response (BOS and a chat template on the prompt only).
using FieldEncodeFn = std::function<std::vector<int32_t>(const std::string&, const std::string&)>;

// FieldEncodeFn with the record's system text as a third argument ("" when it has none): (json
// key, text, system) -> ids, for chat templates with a system turn. Called for every field; only
// a prompt's ids depend on the system text.
using SystemFieldEncodeFn = std::function<std::vector<int32_t>(
    const std::string& key, const std::string& text, const std::string& system)>;

struct ImportOptions {
  FieldEncodeFn encode_field;               // when set, used instead of the EncodeFn
  SystemFieldEncodeFn encode_field_system;  // when set, used instead of both; gets "system"
  TokenizerIdentity tokenizer;              // recorded in the store's attributes
  bool keep_text = true;                    // also store the raw strings under /text/<key>
  bool progress = false;                    // print records/s to stderr every few seconds
};

struct ImportSummary {
  StoreKind kind = StoreKind::text;
  int64_t count = 0;   // records
  int64_t tokens = 0;  // ids over all fields
};

// The kind a JSON line's keys imply: chosen + rejected -> pairs, else prompt + response ->
// prompt_response, else text -> text. Reads the first non-blank line of `jsonl`; throws
// naming file:line when it is not a JSON object or has none of these key sets.
StoreKind detect_jsonl_kind(const std::filesystem::path& jsonl);

// Parses and tokenizes every record of `jsonl` in memory (kind nullopt = detect_jsonl_kind).
// Any malformed line throws Error("data", "<file>:<line>: <what was expected>"); a file
// without records is an error too.
StoreData tokenize_jsonl(const std::filesystem::path& jsonl, std::optional<StoreKind> kind,
                         const EncodeFn& encode, const ImportOptions& options = {});

// tokenize_jsonl + write_store(out_h5). Atomic: when anything fails, nothing is left at
// `out_h5` (an existing store there stays untouched) and no temporary file remains.
ImportSummary import_jsonl(const std::filesystem::path& jsonl, const std::filesystem::path& out_h5,
                           std::optional<StoreKind> kind, const EncodeFn& encode,
                           const ImportOptions& options = {});

}  // namespace tailor::data
