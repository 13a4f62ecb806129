#include "data/sft/sft_dataset.h"

#include <ATen/ATen.h>

#include <string>

#include "common/error.h"

namespace tailor::data {
namespace fs = std::filesystem;

SftDataset::SftDataset(Store store) : store_(std::move(store)) {
  if (store_.kind() == StoreKind::pairs) {
    const std::string name =
        store_.path().empty() ? std::string("dataset") : store_.path().string();
    throw Error("data",
                name + ": is a pairs (preference) dataset; SFT needs kind text or prompt_response");
  }
}

SftDataset SftDataset::open(const fs::path& h5) {
  return SftDataset(Store::open(h5));
}

SftDataset SftDataset::from_jsonl(const fs::path& jsonl, const EncodeFn& encode,
                                  std::optional<StoreKind> kind,
                                  const FieldEncodeFn& encode_field) {
  ImportOptions options;
  options.keep_text = false;  // only the ids are trained on
  options.encode_field = encode_field;
  return SftDataset(Store::from_data(tokenize_jsonl(jsonl, kind, encode, options)));
}

SftDataset SftDataset::from_jsonl(const fs::path& jsonl, const EncodeFn& encode,
                                  std::optional<StoreKind> kind,
                                  const SystemFieldEncodeFn& encode_field) {
  ImportOptions options;
  options.keep_text = false;
  options.encode_field_system = encode_field;
  return SftDataset(Store::from_data(tokenize_jsonl(jsonl, kind, encode, options)));
}

namespace {

bool is_jsonl(const fs::path& file) {
  const std::string ext = file.extension().string();
  return ext == ".jsonl" || ext == ".json";
}

}  // namespace

SftDataset SftDataset::load(const fs::path& file, const EncodeFn& encode,
                            const FieldEncodeFn& encode_field) {
  if (is_jsonl(file)) return from_jsonl(file, encode, std::nullopt, encode_field);
  return open(file);
}

SftDataset SftDataset::load(const fs::path& file, const EncodeFn& encode,
                            const SystemFieldEncodeFn& encode_field) {
  if (is_jsonl(file)) return from_jsonl(file, encode, std::nullopt, encode_field);
  return open(file);
}

void SftDataset::example(int64_t i, std::vector<int32_t>& tokens,
                         std::vector<bool>& learned) const {
  tokens.clear();
  learned.clear();
  if (kind() == StoreKind::text) {
    const IdSpan ids = store_.span("input_ids", i);
    tokens.assign(ids.begin(), ids.end());
    learned.assign(tokens.size(), true);
    return;
  }
  const IdSpan prompt = store_.span("prompt_ids", i);
  const IdSpan response = store_.span("response_ids", i);
  tokens.assign(prompt.begin(), prompt.end());
  tokens.insert(tokens.end(), response.begin(), response.end());
  learned.assign(static_cast<size_t>(prompt.size()), false);
  learned.resize(tokens.size(), true);
}

SftBatch SftDataset::collate(const std::vector<int64_t>& indices,
                             const CollateOptions& options) const {
  if (indices.empty()) throw Error("data", "cannot collate an empty batch");
  std::vector<std::vector<int32_t>> rows(indices.size());
  std::vector<std::vector<bool>> learned(indices.size());
  for (size_t b = 0; b < indices.size(); ++b)
    example(indices[b], rows[b], learned[b]);
  return collate_rows(std::move(rows), std::move(learned), options);
}

SftBatch collate_rows(std::vector<std::vector<int32_t>> rows,
                      std::vector<std::vector<bool>> learned, const CollateOptions& options) {
  if (rows.empty()) throw Error("data", "cannot collate an empty batch");
  if (rows.size() != learned.size())
    throw Error("data", "collate_rows: " + std::to_string(rows.size()) + " rows but " +
                            std::to_string(learned.size()) + " learned masks");
  if (options.max_length < 1) {
    throw Error("data", "CollateOptions.max_length must be >= 1, got " +
                            std::to_string(options.max_length));
  }
  const int32_t pad_id = options.pad_id >= 0 ? options.pad_id : options.eos_id;
  if (pad_id < 0)
    throw Error("data", "CollateOptions needs pad_id or eos_id (GPT-2 pads with eos)");
  if (options.append_eos && options.eos_id < 0)
    throw Error("data", "append_eos needs CollateOptions.eos_id");

  int64_t longest = 0;
  for (size_t b = 0; b < rows.size(); ++b) {
    if (options.append_eos) {
      rows[b].push_back(options.eos_id);
      learned[b].push_back(true);
    }
    if (static_cast<int64_t>(rows[b].size()) > options.max_length) {
      rows[b].resize(static_cast<size_t>(options.max_length));
      learned[b].resize(static_cast<size_t>(options.max_length));
    }
    longest = std::max<int64_t>(longest, static_cast<int64_t>(rows[b].size()));
  }
  const int64_t B = static_cast<int64_t>(rows.size());
  const int64_t T = options.pad_to_max_length ? options.max_length : longest;

  SftBatch batch;
  batch.input_ids = at::full({B, T}, pad_id, at::kLong);
  batch.attention_mask = at::zeros({B, T}, at::kLong);
  batch.labels = at::full({B, T}, kIgnoreIndex, at::kLong);
  auto ids = batch.input_ids.accessor<int64_t, 2>();
  auto mask = batch.attention_mask.accessor<int64_t, 2>();
  auto labels = batch.labels.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& row = rows[static_cast<size_t>(b)];
    for (size_t t = 0; t < row.size(); ++t) {
      ids[b][static_cast<int64_t>(t)] = row[t];
      mask[b][static_cast<int64_t>(t)] = 1;
      if (learned[static_cast<size_t>(b)][t]) labels[b][static_cast<int64_t>(t)] = row[t];
    }
  }
  return batch;
}

int64_t count_tokens(const SftBatch& batch) {
  return batch.attention_mask.sum().item<int64_t>();
}

int64_t count_loss_tokens(const SftBatch& batch) {
  using namespace at::indexing;
  return batch.labels.index({Slice(), Slice(1, None)}).ne(kIgnoreIndex).sum().item<int64_t>();
}

}  // namespace tailor::data
