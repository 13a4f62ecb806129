#include "judges/preference_sources.h"

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "data/store/jsonl_lines.h"
#include "models/tokenizer/prompt_format.h"

namespace tailor {
namespace fs = std::filesystem;

std::vector<PoolPrompt> read_candidate_pool(const fs::path& file) {
  data::JsonlReader reader(file);
  std::vector<PoolPrompt> out;
  const char* expected = "expected a list of strings or of {\"response\": \"...\"}";
  for (std::string line; reader.next(line);) {
    const nlohmann::json j = reader.parse_object(line);
    const char* key = !j.contains("prompt") && j.contains("instruction") ? "instruction" : "prompt";
    if (!j.contains(key) || !j[key].is_string() || j[key].get<std::string>().empty())
      reader.fail(key, "expected a non-empty string");
    PoolPrompt p;
    p.prompt = j[key].get<std::string>();
    if (j.contains("completions")) {
      if (!j["completions"].is_array()) reader.fail("completions", expected);
      for (const auto& c : j["completions"]) {
        if (c.is_string())
          p.completions.push_back(c.get<std::string>());
        else if (c.is_object() && c.contains("response") && c["response"].is_string())
          p.completions.push_back(c["response"].get<std::string>());
        else
          reader.fail("completions", expected);
      }
    } else if (j.contains("chosen") && j.contains("rejected")) {
      for (const char* field : {"chosen", "rejected"}) {
        if (!j[field].is_string()) reader.fail(field, "expected a string");
        p.completions.push_back(j[field].get<std::string>());
      }
    } else {
      reader.fail("completions",
                  "missing: a pool line holds {\"prompt\", \"completions\": [...]} or "
                  "{\"prompt\", \"chosen\", \"rejected\"}");
    }
    out.push_back(std::move(p));
  }
  if (out.empty()) throw Error("data", file.string() + ": no prompts");
  return out;
}

std::vector<std::string> read_prompts_jsonl(const fs::path& file) {
  data::JsonlReader reader(file);
  std::vector<std::string> prompts;
  for (std::string line; reader.next(line);) {
    const nlohmann::json j = reader.parse_object(line);
    if (!j.contains("prompt") || !j["prompt"].is_string())
      reader.fail("prompt", "expected a string ({\"prompt\": \"...\"})");
    if (j["prompt"].get<std::string>().empty()) reader.fail("prompt", "empty");
    prompts.push_back(j["prompt"].get<std::string>());
  }
  if (prompts.empty()) throw Error("dpo", file.string() + ": no prompts");
  return prompts;
}

std::vector<std::vector<TextPair>> pick_pairs(const std::string& user, judges::Judge& judge,
                                              const std::vector<std::string>& prompts,
                                              const std::vector<std::vector<std::string>>& samples,
                                              int64_t max_pairs,
                                              const std::vector<std::set<std::string>>* truncated) {
  if (truncated && truncated->size() != prompts.size())
    throw Error("dpo", "pick_pairs: truncation sets for " + std::to_string(truncated->size()) +
                           " prompts, expected " + std::to_string(prompts.size()));
  if (prompts.size() != samples.size())
    throw Error("dpo", "pick_pairs: " + std::to_string(prompts.size()) + " prompts but " +
                           std::to_string(samples.size()) + " lists of samples");
  std::vector<judges::Candidates> groups(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    groups[i].prompt = prompts[i];
    for (const auto& s : samples[i])
      if (!s.empty()) groups[i].completions.push_back(s);
  }
  const std::vector<judges::Ranking> rankings = judge.rank(groups);
  std::vector<std::vector<TextPair>> out(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto& ranked = groups[i].completions;
    const auto& r = rankings.at(i);
    const size_t K = ranked.size();
    for (size_t k = 0; k < K / 2 && static_cast<int64_t>(out[i].size()) < max_pairs; ++k) {
      const size_t best = r.order[k], worst = r.order[K - 1 - k];
      if (r.prefers[best][worst] > 0) {
        TextPair pair{user, prompts[i], ranked[best], ranked[worst]};
        if (truncated) {
          pair.chosen_truncated = (*truncated)[i].count(pair.chosen) > 0;
          pair.rejected_truncated = (*truncated)[i].count(pair.rejected) > 0;
        }
        out[i].push_back(std::move(pair));
      }
    }
  }
  return out;
}

std::vector<std::string> sample_completions(CausalLMImpl& model, const Tokenizer& tokenizer,
                                            PromptTemplate prompt_template,
                                            const std::vector<std::string>& prompts,
                                            GenerationConfig config, int64_t count,
                                            int64_t first_prompt_index, int64_t batch_prompts,
                                            std::vector<bool>* truncated,
                                            const std::string& system) {
  return sample_completions_with_systems(model, tokenizer, prompt_template, prompts,
                                         std::vector<std::string>(prompts.size(), system), config,
                                         count, first_prompt_index, batch_prompts, truncated);
}

std::vector<std::string> sample_completions_with_systems(
    CausalLMImpl& model, const Tokenizer& tokenizer, PromptTemplate prompt_template,
    const std::vector<std::string>& prompts, const std::vector<std::string>& systems,
    GenerationConfig config, int64_t count, int64_t first_prompt_index, int64_t batch_prompts,
    std::vector<bool>* truncated) {
  config.num_return_sequences = count;
  config.eos_token_id = tokenizer.eos_id();
  std::vector<std::string> out;
  out.reserve(prompts.size() * static_cast<size_t>(count));
  for (size_t start = 0; start < prompts.size(); start += static_cast<size_t>(batch_prompts)) {
    const size_t end = std::min(prompts.size(), start + static_cast<size_t>(batch_prompts));
    std::vector<std::vector<int32_t>> ids;
    for (size_t i = start; i < end; ++i)
      ids.push_back(encode_prompt(tokenizer, prompt_template, prompts[i], systems[i]));
    config.first_prompt_index = first_prompt_index + static_cast<int64_t>(start);
    for (auto& seq : generate(model, ids, config)) {
      if (truncated) truncated->push_back(seq.finish_reason != FinishReason::kEos);
      if (seq.finish_reason == FinishReason::kEos && !seq.ids.empty()) seq.ids.pop_back();
      out.push_back(tokenizer.decode(seq.ids, /*skip_special_tokens=*/true));
    }
  }
  return out;
}

void write_pairs_jsonl(const fs::path& file, const std::vector<TextPair>& pairs) {
  std::string text;
  for (const auto& p : pairs) {
    nlohmann::json line = {
        {"user", p.user}, {"prompt", p.prompt}, {"chosen", p.chosen}, {"rejected", p.rejected}};
    if (p.chosen_truncated) line["chosen_truncated"] = true;
    if (p.rejected_truncated) line["rejected_truncated"] = true;
    text += line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  write_file_atomic(file, text);
}

}  // namespace tailor
