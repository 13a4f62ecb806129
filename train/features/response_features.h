// A frozen causal LM's features of (prompt, completion) pairs: the final hidden state at the last
// token of prompt ++ completion (the same pooling as the VPL context encoder and HF's sequence
// classifiers), for reward heads that sit on a frozen backbone (the multi-reward model of 20
// Questions, PReF's feature head).
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "models/core/causal_lm.h"
#include "models/tokenizer/prompt_format.h"
#include "models/tokenizer/tokenizer.h"

namespace tailor {

// prompt (encoded as training encodes prompts under `prompt_template`) ++ completion (as a
// response), keeping the last `max_length` tokens; no EOS, as the reward stage joins them.
// Error("features", ...) when both are empty.
std::vector<int32_t> response_sequence(const Tokenizer& tokenizer, PromptTemplate prompt_template,
                                       const std::string& prompt, const std::string& completion,
                                       int64_t max_length);

// [texts.size(), D] float32 features of (prompts[i], completions[i]) from `model` (eval mode, no
// gradients). With a non-empty `cache_file`, they are read from it when it holds the same key
// (computed from the model's weights checksum, the encoding and the texts) and written to it
// otherwise (HDF5, atomically).
at::Tensor response_features(CausalLMImpl& model, const Tokenizer& tokenizer,
                             PromptTemplate prompt_template, int64_t max_length,
                             const std::vector<std::string>& prompts,
                             const std::vector<std::string>& completions,
                             const std::filesystem::path& cache_file, std::ostream& log);

}  // namespace tailor
