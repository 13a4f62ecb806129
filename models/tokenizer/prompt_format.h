// How training examples (SFT, preference pairs) become token ids: where the BOS goes and how a
// prompt, with an optional system text, is wrapped. EOS stands for the tokenizer's EOS token
// (GPT-2 <|endoftext|> 50256, Mistral </s> 2), {system} and {prompt} for the texts.
//
//   plain             {prompt} as written; the tokenizer's own special tokens first (HF
//                     `tokenizer(text)`: <s> for Mistral, nothing for GPT-2); the response as a
//                     continuation, without special tokens. With a system text:
//                     "{system}\n{prompt}" (one newline between them, nothing else).
//   mistral_instruct  <s>[INST] {prompt} [/INST] then the response, as Mistral-7B-Instruct's chat
//                     template writes a one-turn conversation (the closing </s> is the EOS the
//                     collator appends, data/sft/sft_dataset.h). With a system text:
//                     "<s>[INST] {system}\n\n{prompt} [/INST]": Mistral's templates have no
//                     system turn and put the system message before the first user message,
//                     separated by a blank line.
//   zephyr            Zephyr's chat template (HuggingFaceH4/zephyr-7b-beta, and
//                     mistral-7b-sft-beta, the base of 20 Questions):
//                       "<|system|>\n{system}EOS\n<|user|>\n{prompt}EOS\n<|assistant|>\n"
//                     and without a system text (empty) no system turn, as that template:
//                       "<|user|>\n{prompt}EOS\n<|assistant|>\n"
//                     then the response; the EOS closing it is the collator's. Each EOS is the
//                     EOS token itself (the template's `eos_token`): its text is put in the string,
//                     which encode_hf recognises as the special token, so the ids are HF's
//                     `tokenizer(apply_chat_template(..., tokenize=False))`, the tokenizer's
//                     special tokens (Mistral <s>) first. For GPT-2 "</s>" is therefore
//                     <|endoftext|> (50256), never the BPE pieces of the text "</s>"; the markers
//                     "<|system|>", "<|user|>", "<|assistant|>" are ordinary text for GPT-2 and
//                     Mistral alike (neither vocabulary has them as tokens).
//
// A response is encoded on its own, so with tokenizers that mark word starts with "▁" and add
// one at the start of every encoded string (Mistral's Prepend normalizer / Metaspace "first"),
// its first space is that marker: for plain and mistral_instruct one leading space of the
// response is dropped before encoding, so " Paris" and "Paris" both become "▁Paris", as inside
// the whole conversation ("[/INST] Paris"). For zephyr the response follows a newline, where no
// marker is added ("\nParis" is <0x0A> "Paris", not "▁Paris"): it is encoded after a "\n" whose
// ids are then removed, so its ids are those it has inside the whole conversation. GPT-2 has no
// markers: its responses are encoded as written, for every template.
//
// The system text changes the prompt only; responses and "text" fields ignore it. Training
// (encode_sft_field) and generation (encode_prompt) give the same prompt ids for the same
// (prompt, system).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/enum_names.h"
#include "models/tokenizer/tokenizer.h"

namespace tailor {

// How a prompt becomes model input (above): plain = as written; mistral_instruct = "[INST]
// prompt [/INST]"; zephyr = "<|user|>\nprompt</s>\n<|assistant|>\n", with a system turn when
// there is a system text.
enum class PromptTemplate { kPlain, kMistralInstruct, kZephyr };

// The names recipes (data.template) and the command line (--template) use.
const EnumNames<PromptTemplate>& prompt_template_names();
const std::string& to_string(PromptTemplate v);

// Ids of one JSON field of an example: "text", "prompt", or a response ("response", and the
// "chosen" / "rejected" of preference pairs), as described above. `system` is the example's
// system text ("" = none); only a "prompt" uses it.
std::vector<int32_t> encode_sft_field(const Tokenizer& tokenizer, PromptTemplate format,
                                      const std::string& field, const std::string& text,
                                      const std::string& system = "");

// The ids a prompt becomes at generation time: exactly the training prompt's, for the same
// system text ("" = none).
std::vector<int32_t> encode_prompt(const Tokenizer& tokenizer, PromptTemplate format,
                                   const std::string& prompt, const std::string& system = "");

}  // namespace tailor
