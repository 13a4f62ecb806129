// What a trained SFT model answers: greedy completions of eval prompts next to their references,
// and the share it gets exactly right. Shown at the end of a run so a newcomer sees what was
// learned, not only a loss.
#pragma once

#include <cstdint>
#include <filesystem>
#include <ostream>
#include <vector>

#include "data/sft/sft_dataset.h"
#include "models/core/causal_lm.h"
#include "models/tokenizer/tokenizer.h"

namespace tailor {

struct SamplesResult {
  int64_t count = 0;  // prompts completed
  int64_t exact = 0;  // completions equal to the reference response, token for token
  double exact_match_rate() const { return count ? double(exact) / double(count) : 0.0; }
};

// Greedily completes the prompts of `examples` (a prompt_response dataset; the first
// `indices.size()` examples given) with at most `max_new_tokens` tokens each, stopping at `eos_id`.
// A completion is an exact match when its ids before EOS equal the reference response's ids and
// it ended with EOS. Writes one JSON line per prompt to `out_file` (atomically): prompt,
// reference, completion (decoded), exact_match, finish_reason; prints the first `show` of them.
SamplesResult write_samples(CausalLMImpl& model, const data::SftDataset& examples,
                            const std::vector<int64_t>& indices, const Tokenizer& tokenizer,
                            int32_t eos_id, int64_t max_new_tokens, int64_t show,
                            const std::filesystem::path& out_file, std::ostream& print);

}  // namespace tailor
