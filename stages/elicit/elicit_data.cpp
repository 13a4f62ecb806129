#include "stages/elicit/elicit_data.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <numeric>
#include <ostream>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/fnv1a.h"
#include "common/seeded_random.h"
#include "data/store/jsonl_lines.h"
#include "judges/preference_sources.h"
#include "train/features/response_features.h"
#include "train/loop/model_setup.h"

namespace tailor {
namespace fs = std::filesystem;
namespace {

// {prompt, completions: [...]} lines (judges/preference_sources.h: UltraFeedback's layout and
// labelled pairs read too).
std::vector<PromptCandidates> read_pool(const fs::path& file) {
  std::vector<PromptCandidates> out;
  for (auto& p : read_candidate_pool(file))
    out.push_back({std::move(p.prompt), std::move(p.completions), 0});
  return out;
}

std::vector<PromptCandidates> candidates_from_json(const nlohmann::json& j) {
  std::vector<PromptCandidates> out;
  for (const auto& p : j.at("prompts"))
    out.push_back({p.at("prompt").get<std::string>(),
                   p.at("completions").get<std::vector<std::string>>(), 0});
  return out;
}

// What the backbone's samples depend on, for the candidates cache.
std::string candidates_key(const ElicitRecipe& r, const std::string& prompts_text) {
  Fnv1a64 h;
  h.update(to_string(r.model.init)).update(r.model.path.string()).update(r.model.preset);
  if (r.model.init == ModelInit::kRandom) h.update("seed " + std::to_string(r.seed));
  if (r.model.init == ModelInit::kPretrained && fs::exists(r.model.path / "model.safetensors"))
    h.update(std::to_string(fs::file_size(r.model.path / "model.safetensors")))
        .update(std::to_string(
            fs::last_write_time(r.model.path / "model.safetensors").time_since_epoch().count()));
  const auto& g = r.generate;
  h.update(nlohmann::json({g.completions, g.max_new_tokens, g.temperature, g.top_k, g.top_p, g.seed,
                           to_string(r.data.prompt_template)})
               .dump());
  h.update(prompts_text);
  return h.hex();
}

std::vector<PromptCandidates> generated_candidates(const ElicitRecipe& r, CausalLMImpl& backbone,
                                                   const Tokenizer& tokenizer, std::ostream& log) {
  const std::vector<std::string> prompts = read_prompts_jsonl(r.data.path);
  const std::string key = candidates_key(r, read_file(r.data.path));
  const fs::path cache = r.cache() / "candidates.json";
  if (fs::exists(cache)) {
    try {
      const nlohmann::json j = nlohmann::json::parse(read_file(cache));
      if (j.value("key", "") == key) {
        log << "[elicit] candidates: read " << j.at("prompts").size() << " prompts' samples from "
            << cache.string() << "\n";
        return candidates_from_json(j);
      }
    } catch (const nlohmann::json::exception&) {
      // A damaged cache is sampled again and replaced.
    }
  }
  GenerationConfig config;
  config.max_new_tokens = r.generate.max_new_tokens;
  config.temperature = r.generate.temperature;
  config.top_k = r.generate.top_k;
  config.top_p = r.generate.top_p;
  config.seed = static_cast<uint64_t>(r.generate.seed);
  log << "[elicit] sampling " << r.generate.completions << " candidates for each of "
      << prompts.size() << " prompts (" << r.generate.max_new_tokens << " new tokens at most)\n";
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<std::string> texts =
      sample_completions(backbone, tokenizer, r.data.prompt_template, prompts, config,
                         r.generate.completions, /*first_prompt_index=*/0);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log << "[elicit] sampled " << texts.size() << " candidates in " << seconds << " s ("
      << texts.size() / std::max(seconds, 1e-9) << " per s)\n";
  nlohmann::json j = {{"key", key}, {"prompts", nlohmann::json::array()}};
  const auto K = static_cast<size_t>(r.generate.completions);
  for (size_t i = 0; i < prompts.size(); ++i)
    j["prompts"].push_back(
        {{"prompt", prompts[i]},
         {"completions",
          std::vector<std::string>(texts.begin() + i * K, texts.begin() + (i + 1) * K)}});
  // Samples may end inside a UTF-8 character; the JSON replaces such bytes, and the run uses
  // the texts as read back, so a rerun (and answers.jsonl) sees exactly the same strings.
  const std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  fs::create_directories(cache.parent_path());
  write_file_atomic(cache, text + "\n");
  return candidates_from_json(nlohmann::json::parse(text));
}

}  // namespace

ElicitData prepare_elicit_data(const ElicitRecipe& r, CausalLMImpl& backbone,
                               const Tokenizer& tokenizer, std::ostream& log) {
  std::vector<PromptCandidates> all = r.data.source == CandidateSource::kPool
                                          ? read_pool(r.data.path)
                                          : generated_candidates(r, backbone, tokenizer, log);
  ElicitData data;
  int64_t dropped = 0;
  std::vector<std::string> prompts, completions;
  for (auto& p : all) {
    std::vector<std::string> distinct;
    std::set<std::string> seen;
    for (auto& t : p.texts)
      if (!t.empty() && seen.insert(t).second) distinct.push_back(std::move(t));
    if (distinct.size() < 2) {
      ++dropped;
      continue;
    }
    p.texts = std::move(distinct);
    p.first_row = static_cast<int64_t>(prompts.size());
    for (const auto& t : p.texts) {
      prompts.push_back(p.prompt);
      completions.push_back(t);
    }
    data.prompts.push_back(std::move(p));
  }
  if (dropped > 0)
    log << "[elicit] " << dropped << " prompts dropped: fewer than two distinct non-empty "
        << "candidates\n";
  const int64_t P = static_cast<int64_t>(data.prompts.size());
  if (P < 2)
    throw Error("data", r.data.path.string() + ": " + std::to_string(P) +
                            " prompts with two or more distinct candidates; the stage needs at "
                            "least 2 (questions and held-out pairs)");
  data.features = response_features(backbone, tokenizer, r.data.prompt_template, r.data.max_length,
                                    prompts, completions, r.cache() / "features.h5", log);

  // The split depends on generate.seed only, so every training seed asks from the same prompts.
  std::vector<int64_t> order(P);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(splitmix64(static_cast<uint64_t>(r.generate.seed) ^ 0x5eedULL));
  for (int64_t i = P - 1; i > 0; --i)
    std::swap(order[i], order[rng() % static_cast<uint64_t>(i + 1)]);
  const int64_t held = std::clamp<int64_t>(std::llround(r.data.eval_fraction * P), 1, P - 1);
  data.heldout_prompts.assign(order.begin(), order.begin() + held);
  data.question_prompts.assign(order.begin() + held, order.end());
  std::sort(data.heldout_prompts.begin(), data.heldout_prompts.end());
  std::sort(data.question_prompts.begin(), data.question_prompts.end());
  log << "[elicit] " << P << " prompts, " << data.rows() << " candidates (" << data.features.size(1)
      << " features each); " << data.question_prompts.size() << " prompts for questions, " << held
      << " held out\n";
  const int64_t longest = r.question_counts().back();
  if (longest > static_cast<int64_t>(data.question_prompts.size()))
    throw Error("recipe", "elicit.questions: " + std::to_string(longest) +
                              " questions need as many question prompts (one per question), but "
                              "the candidate pool has " +
                              std::to_string(data.question_prompts.size()) +
                              " (the prompts of data.path not held out by data.eval_fraction)");
  return data;
}

CausalLM frozen_backbone(const ElicitRecipe& r) {
  CausalLM backbone = build_model(r.model, model_config_for(r.model), at::kFloat);
  if (r.data.max_length > backbone->max_positions())
    throw Error("recipe", "data.max_length " + std::to_string(r.data.max_length) +
                              " exceeds the model's n_positions " +
                              std::to_string(backbone->max_positions()));
  for (auto& p : backbone->parameters())
    p.set_requires_grad(false);
  backbone->eval();
  return backbone;
}

at::Tensor question_features(const ElicitData& data) {
  std::vector<int64_t> rows;
  for (int64_t p : data.question_prompts) {
    const auto& c = data.prompts[static_cast<size_t>(p)];
    for (size_t i = 0; i < c.texts.size(); ++i)
      rows.push_back(c.first_row + static_cast<int64_t>(i));
  }
  return data.features.index_select(0, at::tensor(rows, at::kLong));
}

at::Tensor oracle_verdicts(const ElicitData& data, const std::vector<RowPair>& pairs,
                           const std::vector<std::string>& oracles) {
  at::Tensor labels = at::zeros(
      {static_cast<int64_t>(pairs.size()), static_cast<int64_t>(oracles.size())}, at::kFloat);
  auto acc = labels.accessor<float, 2>();
  for (size_t k = 0; k < oracles.size(); ++k) {
    const judges::Oracle& oracle = judges::oracle(oracles[k]);
    for (size_t i = 0; i < pairs.size(); ++i)
      acc[i][k] = static_cast<float>(judges::prefers(oracle, prompt_of_row(data, pairs[i].a),
                                                     text_of_row(data, pairs[i].a),
                                                     text_of_row(data, pairs[i].b)));
  }
  return labels;
}

std::vector<RowPair> random_pairs(const ElicitData& data, const std::vector<int64_t>& prompts,
                                  int64_t per_prompt, uint64_t seed) {
  std::mt19937_64 rng(splitmix64(seed));
  std::vector<RowPair> out;
  for (int64_t p : prompts) {
    const auto& c = data.prompts[static_cast<size_t>(p)];
    const int64_t n = static_cast<int64_t>(c.texts.size());
    const int64_t all = n * (n - 1) / 2;
    std::set<std::pair<int64_t, int64_t>> taken;
    while (static_cast<int64_t>(taken.size()) < std::min(per_prompt, all)) {
      const auto j = static_cast<int64_t>(rng() % static_cast<uint64_t>(n));
      const auto k = static_cast<int64_t>(rng() % static_cast<uint64_t>(n));
      if (j == k || !taken.insert({std::min(j, k), std::max(j, k)}).second) continue;
      out.push_back({c.first_row + j, c.first_row + k, 0});
    }
  }
  return out;
}

std::vector<RowPair> label_pairs(const ElicitData& data, const std::vector<RowPair>& pairs,
                                 const judges::OracleWeights& weights) {
  std::vector<RowPair> out;
  for (const auto& p : pairs) {
    const int label = judges::mixture_prefers(weights, prompt_of_row(data, p.a),
                                              text_of_row(data, p.a), text_of_row(data, p.b));
    if (label != 0) out.push_back({p.a, p.b, label});
  }
  return out;
}

namespace {
const PromptCandidates& prompt_with_row(const ElicitData& data, int64_t row) {
  auto it = std::upper_bound(data.prompts.begin(), data.prompts.end(), row,
                             [](int64_t r, const PromptCandidates& p) { return r < p.first_row; });
  if (it == data.prompts.begin() || row >= data.rows())
    throw Error("elicit", "feature row " + std::to_string(row) + " out of range");
  return *std::prev(it);
}
}  // namespace

const std::string& prompt_of_row(const ElicitData& data, int64_t row) {
  return prompt_with_row(data, row).prompt;
}

const std::string& text_of_row(const ElicitData& data, int64_t row) {
  const auto& p = prompt_with_row(data, row);
  return p.texts[static_cast<size_t>(row - p.first_row)];
}

}  // namespace tailor
