// Supervised fine-tuning examples and their padded batches.
//
// Dimension legend: B = examples in the batch, T = padded sequence length.
//
// Labels follow Hugging Face's convention (transformers *ForCausalLM, TRL's SFTTrainer):
// `labels` is `input_ids` with -100 at positions that must not be learned, NOT shifted; the
// model/loss shifts internally, predicting labels[:, t+1] from position t. Masked (-100):
//   - padding positions,
//   - prompt positions of prompt_response examples (loss on response tokens only).
// Text examples learn every token. With append_eos, the eos closing the example is learned
// (so the model learns to stop) even though padding uses the same id: masking is by
// position, never by id.
//
// Each example is prompt_ids ++ response_ids (prompt_response) or input_ids (text), then +eos
// when append_eos, then truncated to its first max_length tokens (the end is cut, eos
// included). A prompt of max_length tokens or more therefore leaves no label in that row.
// Rows are right-padded with pad_id (eos by default: GPT-2 has no pad token).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "data/store/jsonl_import.h"
#include "data/store/store.h"

namespace tailor::data {

inline constexpr int64_t kIgnoreIndex = -100;  // torch.nn.CrossEntropyLoss's ignore_index

struct SftBatch {
  at::Tensor input_ids;       // [B, T] int64
  at::Tensor attention_mask;  // [B, T] int64, 1 = token, 0 = padding
  at::Tensor labels;          // [B, T] int64, input_ids or kIgnoreIndex (unshifted, see above)
};

struct CollateOptions {
  int64_t max_length = 0;          // required (> 0): longer examples are truncated at the end
  int32_t eos_id = -1;             // required when append_eos or pad_id < 0
  int32_t pad_id = -1;             // -1 = eos_id
  bool append_eos = false;         // add eos after each example (learned)
  bool pad_to_max_length = false;  // T = max_length instead of the longest row in the batch
};

class SftDataset {
 public:
  // A store of kind text or prompt_response; throws naming the file otherwise.
  static SftDataset open(const std::filesystem::path& h5);
  // Tokenizes a JSONL file in memory (kind nullopt = detect from the first line).
  static SftDataset from_jsonl(const std::filesystem::path& jsonl, const EncodeFn& encode,
                               std::optional<StoreKind> kind = std::nullopt,
                               const FieldEncodeFn& encode_field = {});
  // from_jsonl for *.jsonl / *.json files, open() for anything else. `encode_field`, when set,
  // encodes each JSON field by its key (see ImportOptions).
  static SftDataset load(const std::filesystem::path& file, const EncodeFn& encode,
                         const FieldEncodeFn& encode_field = {});
  // The same with an encoder that also gets each record's optional "system" text ("" = none;
  // data/store/jsonl_import.h), as a chat template needs: pass a lambda taking (key, text,
  // system). The overloads above refuse a record that has a system text.
  static SftDataset from_jsonl(const std::filesystem::path& jsonl, const EncodeFn& encode,
                               std::optional<StoreKind> kind,
                               const SystemFieldEncodeFn& encode_field);
  static SftDataset load(const std::filesystem::path& file, const EncodeFn& encode,
                         const SystemFieldEncodeFn& encode_field);
  explicit SftDataset(Store store);

  int64_t size() const { return store_.count(); }
  StoreKind kind() const { return store_.kind(); }
  const Store& store() const { return store_; }

  // Example `i` before eos/truncation: its tokens and, per token, whether it is learned.
  void example(int64_t i, std::vector<int32_t>& tokens, std::vector<bool>& learned) const;

  // Pads/truncates the examples `indices` (in that order) into one batch; B = indices.size().
  SftBatch collate(const std::vector<int64_t>& indices, const CollateOptions& options) const;

 private:
  Store store_;
};

// The collation above for rows given directly: rows[b] its tokens, learned[b] per token whether it
// is learned (labelled). Used by SftDataset::collate and by the DPO pairs.
SftBatch collate_rows(std::vector<std::vector<int32_t>> rows,
                      std::vector<std::vector<bool>> learned, const CollateOptions& options);

// Non-padding tokens in a batch (attention_mask.sum()), for tokens/s.
int64_t count_tokens(const SftBatch& batch);
// Tokens the shifted loss actually scores: labels[:, 1:] != -100.
int64_t count_loss_tokens(const SftBatch& batch);

}  // namespace tailor::data
