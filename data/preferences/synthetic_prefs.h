// The bundled synthetic preference benchmark, in UltraFeedback's raw shape
// (data/preferences/rated_corpus.h), for recipes that cannot download UltraFeedback. Each aspect
// rating is carried by a surface feature a tiny GPT-2 can detect, so a reward model can learn every
// simulated user's taste.
//
// Every response has exactly 5 sentences; a rating r (1..5) of an aspect means exactly r of them
// carry that aspect's positive feature (positions drawn independently per aspect):
//   helpfulness:            informative topic sentence vs generic filler
//                           (synthetic_filler_sentences()).
//   honesty:                calibrated hedge opener (synthetic_hedges()) vs overconfident
//                           opener (synthetic_overconfident_openers()).
//   instruction_following:  follows the requested format (list: line starts with "- "; prose:
//                           no marker) vs breaks it (list: no marker; prose: starts with "* ").
//   truthfulness:           properly cased and ending with "." vs all lowercase ending with
//                           "!!".
// A sentence is composed as opener + " " + content, then cased and punctuated, then marked.
// List answers put one sentence per line; prose answers join them with spaces. With probability
// na_fraction a rating is reported as "N/A" (NaN) although the text still follows a drawn value.
// Deterministic in the seed on every machine (only raw std::mt19937_64 outputs are used).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/preferences/rated_corpus.h"

namespace tailor::data {

struct SyntheticOptions {
  int64_t prompts = 1000;
  int64_t responses_per_prompt = 4;
  double na_fraction = 0.02;  // probability that a rating is "N/A"
  uint64_t seed = 0;
};

// Aspects are ultrafeedback_aspects(); source is "tailor-synthetic". Throws Error("data", ...)
// for non-positive sizes or na_fraction outside [0, 1].
RatedCorpus make_synthetic_corpus(const SyntheticOptions& options);

// Writes `corpus` as UltraFeedback raw JSONL, one line per prompt: {"instruction", "completions":
// [{"response", "annotations": {<aspect>: {"Rating": "1".."5" | "N/A"}}}], "source"}, atomically.
// Throws Error("data", ...) when a rating is not an integer 1..5 or NaN.
void write_ultrafeedback_raw_jsonl(const std::filesystem::path& out, const RatedCorpus& corpus);

// The generator's phrase banks (for tests and documentation).
const std::vector<std::string>& synthetic_hedges();                 // "I believe", ...
const std::vector<std::string>& synthetic_overconfident_openers();  // "Definitely,", ...
const std::vector<std::string>& synthetic_filler_sentences();       // lowercase, no final "."

}  // namespace tailor::data
