// How training examples (SFT, preference pairs) become token ids: where the BOS goes and how a
// prompt is wrapped.
//
//   plain             text / prompt as written; the tokenizer's own special tokens first (HF
//                     `tokenizer(text)`: <s> for Mistral, nothing for GPT-2); the response as a
//                     continuation, without special tokens.
//   mistral_instruct  <s>[INST] prompt [/INST] then the response, as Mistral-7B-Instruct's chat
//                     template writes a one-turn conversation (the closing </s> is the EOS the
//                     collator appends, data/sft/sft_dataset.h).
//
// A response is encoded on its own, so with tokenizers that mark word starts with "▁" and add
// one at the start of every encoded string (Mistral's Prepend normalizer / Metaspace "first"),
// its first space is that marker: one leading space of the response is dropped before encoding,
// so " Paris" and "Paris" both become "▁Paris", as inside the whole conversation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/enum_names.h"
#include "models/tokenizer/tokenizer.h"

namespace tailor {

// How a prompt becomes model input: plain = as written; mistral_instruct = "[INST] prompt
// [/INST]" as Mistral-7B-Instruct's chat template writes it.
enum class PromptTemplate { kPlain, kMistralInstruct };

// The names recipes (data.template) and the command line (--template) use.
const EnumNames<PromptTemplate>& prompt_template_names();
const std::string& to_string(PromptTemplate v);

// Ids of one JSON field of an example: "text", "prompt", or a response ("response", and the
// "chosen" / "rejected" of preference pairs), as described above.
std::vector<int32_t> encode_sft_field(const Tokenizer& tokenizer, PromptTemplate format,
                                      const std::string& field, const std::string& text);

// The ids a prompt becomes at generation time: exactly the training prompt's.
std::vector<int32_t> encode_prompt(const Tokenizer& tokenizer, PromptTemplate format,
                                   const std::string& prompt);

}  // namespace tailor
