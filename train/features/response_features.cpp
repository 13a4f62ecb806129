#include "train/features/response_features.h"

#include <numeric>
#include <ostream>

#include <c10/core/GradMode.h>

#include "common/error.h"
#include "common/fnv1a.h"
#include "train/features/context_embeddings.h"

namespace tailor {

std::vector<int32_t> response_sequence(const Tokenizer& tokenizer, PromptTemplate prompt_template,
                                       const std::string& prompt, const std::string& completion,
                                       int64_t max_length) {
  std::vector<int32_t> ids = encode_prompt(tokenizer, prompt_template, prompt);
  const auto response = encode_sft_field(tokenizer, prompt_template, "response", completion);
  ids.insert(ids.end(), response.begin(), response.end());
  if (static_cast<int64_t>(ids.size()) > max_length) ids.erase(ids.begin(), ids.end() - max_length);
  if (ids.empty())
    throw Error("features", "prompt \"" + prompt.substr(0, 40) + "\" and its completion " +
                                "tokenize to nothing");
  return ids;
}

namespace {

// What the features depend on: the weights (a checksum of every parameter), the encoding and
// the texts.
std::string cache_key(CausalLMImpl& model, PromptTemplate prompt_template, int64_t max_length,
                      const std::vector<std::string>& prompts,
                      const std::vector<std::string>& completions) {
  Fnv1a64 h;
  c10::NoGradGuard no_grad;
  for (const auto& item : model.named_parameters()) {
    const at::Tensor p = item.value().detach().to(at::kDouble);
    const double sums[2] = {p.sum().item<double>(), p.abs().sum().item<double>()};
    h.update(item.key());
    h.update(std::string_view(reinterpret_cast<const char*>(sums), sizeof(sums)));
  }
  h.update(to_string(prompt_template)).update(std::to_string(max_length));
  for (size_t i = 0; i < prompts.size(); ++i) {
    h.update(prompts[i]).update(std::string_view("\0", 1));
    h.update(completions[i]).update(std::string_view("\0", 1));
  }
  return h.hex();
}

}  // namespace

at::Tensor response_features(CausalLMImpl& model, const Tokenizer& tokenizer,
                             PromptTemplate prompt_template, int64_t max_length,
                             const std::vector<std::string>& prompts,
                             const std::vector<std::string>& completions,
                             const std::filesystem::path& cache_file, std::ostream& log) {
  if (prompts.size() != completions.size())
    throw Error("features", std::to_string(prompts.size()) + " prompts but " +
                                std::to_string(completions.size()) + " completions");
  std::vector<std::vector<int32_t>> sequences;
  sequences.reserve(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i)
    sequences.push_back(
        response_sequence(tokenizer, prompt_template, prompts[i], completions[i], max_length));
  std::vector<int64_t> all(sequences.size());
  std::iota(all.begin(), all.end(), 0);
  if (cache_file.empty()) return embed_sequences(model, sequences, all);
  return context_embeddings(model, sequences, all, cache_file,
                            cache_key(model, prompt_template, max_length, prompts, completions),
                            log);
}

}  // namespace tailor
