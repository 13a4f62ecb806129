#include "models/tokenizer/prompt_format.h"

#include <algorithm>
#include <cstddef>

#include "common/error.h"

namespace tailor {
namespace {

// True for tokenizers whose encoding of any text starts a new "▁" word (Llama/Mistral).
bool marks_word_start(const Tokenizer& tokenizer) {
  const std::vector<int32_t> with_space = tokenizer.encode(" a");
  const std::vector<int32_t> without = tokenizer.encode("a");
  return with_space.size() > without.size();
}

// The EOS token's text, for templates that write it inside the conversation (Zephyr's
// `eos_token`). Checked to come back as the EOS id alone: a tokenizer that did not recognise it
// as a special token would silently train on its BPE pieces instead.
std::string eos_text(const Tokenizer& tokenizer) {
  const int32_t eos = tokenizer.eos_id();
  std::string text = tokenizer.decode({eos});
  if (tokenizer.encode(text, /*allow_special=*/true) != std::vector<int32_t>{eos}) {
    throw Error("tokenizer", "the zephyr template writes the EOS token \"" + text + "\" (id " +
                                 std::to_string(eos) +
                                 ") into the prompt, but the tokenizer does not encode that text "
                                 "back to the EOS id");
  }
  return text;
}

std::string zephyr_text(const Tokenizer& tokenizer, const std::string& prompt,
                        const std::string& system) {
  const std::string eos = eos_text(tokenizer);
  std::string text;
  if (!system.empty()) text += "<|system|>\n" + system + eos + "\n";
  return text + "<|user|>\n" + prompt + eos + "\n<|assistant|>\n";
}

// A zephyr response for "▁" tokenizers: its ids inside the conversation, where it follows
// "<|assistant|>\n" and gets no word marker of its own. Encoding "\n" + response and removing the
// ids of "\n" gives them, because in Mistral's vocabulary a newline is a byte-fallback token
// (<0x0A>) that no BPE merge crosses; should the ids not start with those of "\n" (another
// vocabulary), the response falls back to the rule of the other templates.
std::vector<int32_t> zephyr_response(const Tokenizer& tokenizer, const std::string& text) {
  const std::vector<int32_t> newline = tokenizer.encode("\n");
  std::vector<int32_t> ids = tokenizer.encode("\n" + text);
  if (ids.size() > newline.size() && std::equal(newline.begin(), newline.end(), ids.begin())) {
    ids.erase(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(newline.size()));
    return ids;
  }
  return tokenizer.encode(!text.empty() && text[0] == ' ' ? text.substr(1) : text);
}

}  // namespace

const EnumNames<PromptTemplate>& prompt_template_names() {
  static const EnumNames<PromptTemplate> table = {
      {"plain", PromptTemplate::kPlain},
      {"mistral_instruct", PromptTemplate::kMistralInstruct},
      {"zephyr", PromptTemplate::kZephyr}};
  return table;
}

const std::string& to_string(PromptTemplate v) {
  return enum_name(prompt_template_names(), v);
}

std::vector<int32_t> encode_prompt(const Tokenizer& tokenizer, PromptTemplate format,
                                   const std::string& prompt, const std::string& system) {
  switch (format) {
    case PromptTemplate::kMistralInstruct: {
      const std::string user = system.empty() ? prompt : system + "\n\n" + prompt;
      return tokenizer.encode_hf("[INST] " + user + " [/INST]", /*add_special_tokens=*/true);
    }
    case PromptTemplate::kZephyr:
      return tokenizer.encode_hf(zephyr_text(tokenizer, prompt, system),
                                 /*add_special_tokens=*/true);
    case PromptTemplate::kPlain:
      break;
  }
  return tokenizer.encode_hf(system.empty() ? prompt : system + "\n" + prompt,
                             /*add_special_tokens=*/true);
}

std::vector<int32_t> encode_sft_field(const Tokenizer& tokenizer, PromptTemplate format,
                                      const std::string& field, const std::string& text,
                                      const std::string& system) {
  if (field == "prompt") return encode_prompt(tokenizer, format, text, system);
  if (field == "response" || field == "chosen" || field == "rejected") {
    if (!marks_word_start(tokenizer)) return tokenizer.encode(text);
    if (format == PromptTemplate::kZephyr) return zephyr_response(tokenizer, text);
    if (!text.empty() && text[0] == ' ') return tokenizer.encode(text.substr(1));
    return tokenizer.encode(text);
  }
  return tokenizer.encode_hf(text, /*add_special_tokens=*/true);  // "text"
}

}  // namespace tailor
