#include "models/tokenizer/prompt_format.h"

namespace tailor {
namespace {

// True for tokenizers whose encoding of any text starts a new "▁" word (Llama/Mistral).
bool marks_word_start(const Tokenizer& tokenizer) {
  const std::vector<int32_t> with_space = tokenizer.encode(" a");
  const std::vector<int32_t> without = tokenizer.encode("a");
  return with_space.size() > without.size();
}

}  // namespace

const EnumNames<PromptTemplate>& prompt_template_names() {
  static const EnumNames<PromptTemplate> table = {
      {"plain", PromptTemplate::kPlain}, {"mistral_instruct", PromptTemplate::kMistralInstruct}};
  return table;
}

const std::string& to_string(PromptTemplate v) {
  return enum_name(prompt_template_names(), v);
}

std::vector<int32_t> encode_prompt(const Tokenizer& tokenizer, PromptTemplate format,
                                   const std::string& prompt) {
  if (format == PromptTemplate::kMistralInstruct) {
    return tokenizer.encode_hf("[INST] " + prompt + " [/INST]", /*add_special_tokens=*/true);
  }
  return tokenizer.encode_hf(prompt, /*add_special_tokens=*/true);
}

std::vector<int32_t> encode_sft_field(const Tokenizer& tokenizer, PromptTemplate format,
                                      const std::string& field, const std::string& text) {
  if (field == "prompt") return encode_prompt(tokenizer, format, text);
  if (field == "response" || field == "chosen" || field == "rejected") {
    if (!text.empty() && text[0] == ' ' && marks_word_start(tokenizer)) {
      return tokenizer.encode(text.substr(1));
    }
    return tokenizer.encode(text);
  }
  return tokenizer.encode_hf(text, /*add_special_tokens=*/true);  // "text"
}

}  // namespace tailor
