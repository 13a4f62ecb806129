// Responses with per-aspect ratings (UltraFeedback-style), from which simulated users derive
// their preference labels (data/preferences/simulated_users.h).
//
// Dimension legend: P prompts, R responses, A aspects.
//
// JSONL shapes read here (one JSON object per line, blank lines skipped, other keys ignored):
//   ultrafeedback_raw (openbmb/UltraFeedback):
//     {"instruction": "...", "completions": [{"response": "...", "annotations": {
//        "helpfulness": {"Rating": "4", ...}, "honesty": {...}, "instruction_following": {...},
//        "truthfulness": {...}}}, ...]}
//     Rating is a string "1".."5" or "N/A" (a JSON number 1..5 is accepted too); "N/A" and a
//     missing aspect become NaN (= not rated).
//   ultrafeedback_binarized (HuggingFaceH4/ultrafeedback_binarized):
//     {"prompt": "...", "chosen": [{"role": "user", "content": ...}, {"role": "assistant",
//      "content": ...}], "rejected": [...], "score_chosen": 8.0, "score_rejected": 5.5}
//     -> one aspect "overall", two responses per prompt (the last assistant message of each list).
//   pairs: {"prompt", "chosen", "rejected", "user"?} (data/store/jsonl_import.h); not a rated
//   corpus.
//
// HDF5 store (schema "tailor.rated", version 1):
//   attributes on "/":  schema = "tailor.rated", schema_version = 1, kind = "rated",
//                       source = the file imported from, num_aspects = A
//   /aspects           UTF-8 strings [A]
//   /prompts           UTF-8 strings [P]
//   /responses         UTF-8 strings [R]
//   /response_prompt   int64 [R]       index into prompts
//   /ratings           float32 [R * A] row-major (response r, aspect a at r * A + a); NaN = not
//                                      rated
// Python: np.asarray(f["ratings"]).reshape(-1, f.attrs["num_aspects"]).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace tailor::data {

inline constexpr const char* kRatedSchema = "tailor.rated";
inline constexpr int64_t kRatedSchemaVersion = 1;

// The four UltraFeedback aspects, in this order: helpfulness, honesty, instruction_following,
// truthfulness.
const std::vector<std::string>& ultrafeedback_aspects();

struct RatedCorpus {
  std::vector<std::string> aspects;      // [A]
  std::vector<std::string> prompts;      // [P]
  std::vector<std::string> responses;    // [R]
  std::vector<int64_t> response_prompt;  // [R] index into prompts
  std::vector<float> ratings;            // [R * A] row-major; NaN = not rated ("N/A")
  std::string source;

  int64_t num_aspects() const { return static_cast<int64_t>(aspects.size()); }
  int64_t num_responses() const { return static_cast<int64_t>(responses.size()); }
  // Bounds-checked; NaN when not rated.
  float rating(int64_t r, int64_t a) const;
  // Throws Error("data", ...) when sizes disagree, a prompt index is out of range or aspects are
  // missing or repeated.
  void validate() const;
};

enum class PreferenceFormat { ultrafeedback_raw, ultrafeedback_binarized, pairs };

// The shape a JSONL file's first non-blank line's keys imply: "completions" -> raw,
// "score_chosen"/"score_rejected" or message-list "chosen" -> binarized, string "chosen" +
// "rejected" -> pairs. Throws naming file:line when none fits.
PreferenceFormat detect_preference_format(const std::filesystem::path& jsonl);

// Parse a whole JSONL file. Malformed lines throw Error("data", "<file>:<line>: <key>: <what
// was expected>"); an empty file is an error too.
RatedCorpus read_ultrafeedback_raw(const std::filesystem::path& jsonl);
RatedCorpus read_ultrafeedback_binarized(const std::filesystem::path& jsonl);

// Writes the store atomically (nothing is left at `h5` when it fails).
void write_rated_store(const std::filesystem::path& h5, const RatedCorpus& corpus);
// Throws naming the file when it is not a rated store or its datasets disagree.
RatedCorpus read_rated_store(const std::filesystem::path& h5);

// ".h5" -> read_rated_store; ".jsonl" (or anything else) -> raw or binarized by
// detect_preference_format (a pairs file is an error: it carries labels, not ratings).
RatedCorpus read_rated_corpus(const std::filesystem::path& path);

}  // namespace tailor::data
