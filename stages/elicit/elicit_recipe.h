// The elicitation recipe (stage: elicit): learn each new user's preferences from a handful of
// pairwise answers (docs/elicitation.md). recipes/elicit_*.yaml are complete, commented
// examples; `tailor run --help` lists every key.
//
// The run: a frozen backbone samples generate.completions candidate answers to every prompt of
// data.path; their features (the last token's hidden state) train the multi-reward model, one
// head per training oracle (reward.*); then every respondent in `users` (a simulated new user:
// a weighted mixture of oracles) answers elicit.questions questions per selector, and after
// every answer the posterior-mean preference embedding is scored on held-out pairs that the
// respondent labelled.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "judges/elicit/question_choice.h"
#include "models/tokenizer/prompt_format.h"
#include "train/recipe/schema.h"
#include "train/recipe/sections.h"

namespace tailor {

// elicit.method: 20 Questions (multi-reward model + posterior sampling), or PReF (reward
// factorisation over simulated training users + logistic fit of a new user).
enum class ElicitMethod { kTwentyQuestions, kPref };
const EnumNames<ElicitMethod>& elicit_method_names();  // twenty_questions, pref
const std::string& to_string(ElicitMethod method);
// The selectors a method takes: twenty_questions info_gain | volume | random; pref active |
// random. selector_choices lists them for messages.
bool method_takes(ElicitMethod method, elicit::Selector selector);
std::string selector_choices(ElicitMethod method);

// data.source: the backbone's own samples of each prompt, or a pool of completions per prompt.
enum class CandidateSource { kGenerated, kPool };
const EnumNames<CandidateSource>& candidate_source_names();  // generated, pool
const std::string& to_string(CandidateSource source);

struct ElicitDataSection {
  CandidateSource source;
  std::filesystem::path path;  // generated: {prompt} JSONL; pool: {prompt, completions} JSONL
  PromptTemplate prompt_template;
  int64_t max_length;    // tokens of prompt + completion the features see (the last ones)
  double eval_fraction;  // prompts held out: the held-out pairs come from them
};

struct ElicitGenerateSection {
  int64_t completions;  // candidates per prompt (N)
  int64_t max_new_tokens;
  double temperature;
  int64_t top_k;
  double top_p;
  int64_t seed;
};

// The multi-reward model and its training pairs.
struct ElicitRewardSection {
  std::vector<std::string> oracles;  // one head per oracle
  int64_t hidden_dim;
  double dropout;
  int64_t pairs_per_prompt;  // random candidate pairs per training prompt, labelled by every oracle
};

// PReF (elicit.method: pref): the training users, the factorisation and a new user's fit.
struct ElicitPrefSection {
  int64_t rank;            // J base rewards
  int64_t training_users;  // simulated: Dirichlet mixtures of reward.oracles, signs flipped
  double dirichlet_alpha;
  double flip_probability;
  int64_t answers_per_user;      // training pairs each training user answers (the rest missing)
  int64_t dev_answers_per_user;  // held-out prompts' pairs each answers, for the dev metrics
  int64_t impute_iterations;
  double head_l2;     // ridge weight fitting the linear head to Phi
  double lambda_l2;   // refinement: on the training users' lambda (the paper: 0.02)
  double w_l2;        // refinement: on the head
  double user_l2;     // a new user's beta
  int64_t new_users;  // simulated new users (same distribution, other seed) besides `users`
};

struct ElicitTrainSection {
  int64_t max_steps;
  int64_t batch_size;  // pairs per step
  int64_t log_every;
  int64_t eval_every;
  int64_t checkpoint_every;
  int64_t keep_checkpoints;
  bool resume;
};

struct ElicitSection {
  ElicitMethod method;
  std::vector<std::string> selector;  // names; selectors() below parses them
  std::vector<double> questions;      // K values, whole numbers; the loop runs to the largest
  int64_t samples;                    // M posterior samples per question
  int64_t estimate_samples;           // E >= M: the same chain, averaged for the user's estimate
  int64_t burn_in;
  int64_t thinning;
  double proposal_step;
  int64_t heldout_pairs_per_prompt;
};

struct ElicitRecipe {
  std::string stage;  // "elicit"
  int64_t seed;
  std::filesystem::path output_dir;
  std::filesystem::path cache_dir;  // empty = output_dir/cache
  std::filesystem::path tokenizer;
  ModelSection model;
  WeightTable users;  // respondent -> {oracle: weight}
  ElicitDataSection data;
  ElicitGenerateSection generate;
  ElicitRewardSection reward;
  OptimizerSection optimizer;
  ScheduleSection schedule;
  ElicitTrainSection train;
  ElicitSection elicit;
  ElicitPrefSection pref;

  // elicit.selector parsed (validated when the recipe was resolved).
  std::vector<elicit::Selector> selectors() const;
  // elicit.questions as counts, ascending.
  std::vector<int64_t> question_counts() const;
  std::filesystem::path cache() const {
    return cache_dir.empty() ? output_dir / "cache" : cache_dir;
  }
};

const Schema<ElicitRecipe>& elicit_recipe_schema();
ResolvedConfig resolve_elicit_recipe(const std::string& yaml_text, const std::string& source,
                                     const std::vector<std::string>& overrides = {});
ElicitRecipe elicit_recipe_from_config(const ResolvedConfig& config);
ElicitRecipe load_elicit_recipe(const std::filesystem::path& file,
                                const std::vector<std::string>& overrides = {});
void check_elicit_inputs(const ElicitRecipe& recipe);
std::string elicit_recipe_hash(const ElicitRecipe& recipe);

}  // namespace tailor
