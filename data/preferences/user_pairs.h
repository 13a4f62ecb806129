// Per-user preference pairs for DPO (issue 11): one JSONL line per pair,
//   {"user": "alice", "prompt": "...", "chosen": "...", "rejected": "..."}
// tokenized like the SFT stage's prompt_response examples (the prompt through the recipe's
// template, each response as a response, then EOS), so DPO sees exactly the sequences SFT
// trained on. A response that did not end ("chosen_truncated": true or "rejected_truncated":
// true, written for samples cut at generate.max_new_tokens) gets no EOS: its log-prob is that of
// the text alone, so training does not teach the model to stop where a sample was cut. A batch of B
// pairs has 2B rows: the chosen sequences first, then the rejected ones in the same order, labels
// masking the prompt and the padding (data/sft/sft_dataset.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/sft/sft_dataset.h"
#include "data/store/jsonl_import.h"

namespace tailor::data {

struct UserPair {
  std::string user;
  std::vector<int32_t> prompt, chosen, rejected;
  // The texts as the file gives them (from_jsonl), for evaluation output; empty for pairs built
  // from ids.
  std::string prompt_text, chosen_text, rejected_text;
  // A response cut before it ended (a sample that reached max_new_tokens): no EOS is appended.
  bool chosen_truncated = false, rejected_truncated = false;
};

struct PairBatch {
  SftBatch rows;                   // [2B, T]: rows b (chosen) and B + b (rejected) are pair b
  std::vector<std::string> users;  // [B]: the user of each pair
  int64_t pairs() const { return static_cast<int64_t>(users.size()); }
};

class UserPairs {
 public:
  // encode_field(field, text) with field "prompt" or "response" (prompt_format.h's
  // encode_sft_field). Errors name the file, the line and the key: a line that is not a JSON
  // object, a missing or non-string user/prompt/chosen/rejected, an empty user, an empty
  // response, a chosen_truncated/rejected_truncated that is not a boolean.
  static UserPairs from_jsonl(const std::filesystem::path& file, const FieldEncodeFn& encode_field);
  explicit UserPairs(std::vector<UserPair> pairs);

  int64_t size() const { return static_cast<int64_t>(pairs_.size()); }
  const UserPair& pair(int64_t i) const { return pairs_.at(static_cast<size_t>(i)); }
  // The users, sorted, each once.
  std::vector<std::string> users() const;
  // Indices of one user's pairs, in file order.
  std::vector<int64_t> indices_of(const std::string& user) const;

  // The pairs `indices` as 2B rows (see above); options as for SFT (append_eos: the EOS closing
  // each response that was not truncated is learned; max_length cuts each sequence's end).
  PairBatch collate(const std::vector<int64_t>& indices, const CollateOptions& options) const;

 private:
  std::vector<UserPair> pairs_;
};

}  // namespace tailor::data
