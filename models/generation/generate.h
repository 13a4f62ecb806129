// Text generation for any causal LM (models/core/causal_lm.h): batched, left-padded prompts,
// one prefill then one token per step through the KV cache, greedy or sampled (temperature,
// top-k, top-p in Hugging Face's order), several return sequences per prompt, stopping per
// sequence at EOS or max_new_tokens.
//
// What matches HF's generate: left padding with attention_mask [B, S] growing one column per
// step and position_ids = cumsum(mask) - 1 (clamped at 0); the logits warpers and their order;
// greedy = argmax of the last position's logits; EOS ends a sequence and is part of its output.
//
// Randomness: each output sequence draws from its own std::mt19937_64, seeded from (seed, the
// prompt's index first_prompt_index + i, the return-sequence index r) through splitmix64, one
// uniform per sampled token. So a sequence's samples depend only on the seed, its prompt's index
// and its own logits: not on the batch it shares, the batch size or num_return_sequences
// (sequence r of a prompt is the same with R = 2 and R = 5), and the draws replay on every
// platform and LibTorch version (torch's multinomial and generators give no such promise).
// Batched logits differ from unbatched ones by float rounding only, which may change a draw that
// lands within rounding of a probability boundary.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "models/core/causal_lm.h"

namespace tailor {

struct GenerationConfig {
  int64_t max_new_tokens = 128;  // >= 1
  // 0 = greedy (HF's do_sample=False); > 0 samples from softmax(logits / temperature) after
  // top_k and top_p filtering. top_k and top_p apply only when sampling.
  double temperature = 0.0;
  int64_t top_k = 50;  // 0 = off (HF's default 50)
  double top_p = 1.0;  // in (0, 1]; 1 = off
  uint64_t seed = 0;
  int64_t num_return_sequences = 1;  // R >= 1 outputs per prompt (identical when greedy)
  // The token that ends a sequence; default the model's eos_token_id. Without one, sequences end
  // only at max_new_tokens.
  std::optional<int64_t> eos_token_id;
  // The id put in left-padding positions (masked, so any valid id gives the same result);
  // default the model's pad_token_id, else the EOS id, else 0.
  std::optional<int64_t> pad_token_id;
  // The index of prompts[0] in the caller's whole input, for the random streams (see above): a
  // caller that splits its prompts into batches passes each batch's offset.
  int64_t first_prompt_index = 0;
  // true: prefill once, then feed one token per step with a KvCache. false: recompute the whole
  // sequence at every step (the reference the cached path is tested against; O(S^2) per token).
  bool use_cache = true;

  // Throws Error("generate", ...) naming the field for values outside the ranges above.
  void validate() const;
};

enum class FinishReason { kEos, kLength };
const char* finish_reason_name(FinishReason reason);  // "eos" | "length"

struct GeneratedSequence {
  int64_t prompt_index = 0;    // index into `prompts`
  int64_t sequence_index = 0;  // r in [0, num_return_sequences)
  std::vector<int32_t> ids;    // generated ids only (no prompt), EOS included when produced
  FinishReason finish_reason = FinishReason::kLength;
};

// Generates for every prompt (token ids, no padding; BOS, if the model wants one, already
// there). Returns prompts.size() * R sequences, prompt-major: entry i * R + r is prompt i's r-th.
// Runs under NoGradGuard with the model in eval mode (its training mode is restored after), in
// the model's dtype and on its device; logits are processed in float32. Errors (Error
// "generate") name the prompt index: an empty prompt, an id outside [0, vocab_size), or more
// than max_positions - max_new_tokens tokens.
std::vector<GeneratedSequence> generate(CausalLMImpl& model,
                                        const std::vector<std::vector<int32_t>>& prompts,
                                        const GenerationConfig& config);

}  // namespace tailor
