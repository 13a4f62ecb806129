#include "stages/sft/samples.h"

#include <algorithm>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "models/generation/generate.h"

namespace tailor {

SamplesResult write_samples(CausalLMImpl& model, const data::SftDataset& examples,
                            const std::vector<int64_t>& indices, const Tokenizer& tokenizer,
                            int32_t eos_id, int64_t max_new_tokens, int64_t show,
                            const std::filesystem::path& out_file, std::ostream& print) {
  std::vector<std::vector<int32_t>> prompts, references;
  std::vector<int32_t> tokens;
  std::vector<bool> learned;
  for (int64_t i : indices) {
    examples.example(i, tokens, learned);
    std::vector<int32_t> prompt, reference;
    for (size_t t = 0; t < tokens.size(); ++t)
      (learned[t] ? reference : prompt).push_back(tokens[t]);
    prompts.push_back(std::move(prompt));
    references.push_back(std::move(reference));
  }
  GenerationConfig config;
  config.max_new_tokens = max_new_tokens;
  config.temperature = 0.0;  // greedy
  config.eos_token_id = eos_id;
  config.pad_token_id = eos_id;
  // Batches of 16 prompts: left padding wastes little on prompts of similar length.
  std::vector<GeneratedSequence> outputs;
  constexpr size_t kBatch = 16;
  for (size_t start = 0; start < prompts.size(); start += kBatch) {
    const size_t end = std::min(prompts.size(), start + kBatch);
    config.first_prompt_index = static_cast<int64_t>(start);
    auto batch = generate(
        model, std::vector<std::vector<int32_t>>(prompts.begin() + start, prompts.begin() + end),
        config);
    outputs.insert(outputs.end(), batch.begin(), batch.end());
  }

  SamplesResult result;
  std::ostringstream lines;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const GeneratedSequence& out = outputs[i];
    std::vector<int32_t> answer = out.ids;
    const bool ended = out.finish_reason == FinishReason::kEos;
    if (ended) answer.pop_back();  // the EOS
    const bool exact = ended && answer == references[i];
    ++result.count;
    result.exact += exact ? 1 : 0;
    const std::string prompt = tokenizer.decode(prompts[i], /*skip_special_tokens=*/true);
    const std::string reference = tokenizer.decode(references[i], true);
    const std::string completion = tokenizer.decode(answer, true);
    lines << nlohmann::json{{"prompt", prompt},
                            {"reference", reference},
                            {"completion", completion},
                            {"exact_match", exact},
                            {"finish_reason", finish_reason_name(out.finish_reason)}}
                 .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
          << "\n";
    if (static_cast<int64_t>(i) < show) {
      print << "  prompt:     "
            << nlohmann::json(prompt).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
            << "\n  reference:  "
            << nlohmann::json(reference).dump(-1, ' ', false,
                                              nlohmann::json::error_handler_t::replace)
            << "\n  completion: "
            << nlohmann::json(completion)
                   .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
            << (exact ? "   (exact)" : "") << "\n";
    }
  }
  write_file_atomic(out_file, lines.str());
  return result;
}

}  // namespace tailor
