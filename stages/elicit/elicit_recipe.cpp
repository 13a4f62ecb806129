#include "stages/elicit/elicit_recipe.h"

#include <algorithm>
#include <cmath>

#include "common/atomic_file.h"
#include "common/error.h"
#include "data/store/jsonl_lines.h"
#include "judges/oracles.h"

namespace tailor {
namespace fs = std::filesystem;

const EnumNames<ElicitMethod>& elicit_method_names() {
  static const EnumNames<ElicitMethod> table = {
      {"twenty_questions", ElicitMethod::kTwentyQuestions}, {"pref", ElicitMethod::kPref}};
  return table;
}
const std::string& to_string(ElicitMethod method) {
  return enum_name(elicit_method_names(), method);
}

bool method_takes(ElicitMethod method, elicit::Selector selector) {
  using elicit::Selector;
  return method == ElicitMethod::kPref
             ? selector == Selector::kActive || selector == Selector::kRandom
             : selector != Selector::kActive;
}

std::string selector_choices(ElicitMethod method) {
  return method == ElicitMethod::kPref ? "active | random" : "info_gain | volume | random";
}

const EnumNames<CandidateSource>& candidate_source_names() {
  static const EnumNames<CandidateSource> table = {{"generated", CandidateSource::kGenerated},
                                                   {"pool", CandidateSource::kPool}};
  return table;
}
const std::string& to_string(CandidateSource source) {
  return enum_name(candidate_source_names(), source);
}

std::vector<elicit::Selector> ElicitRecipe::selectors() const {
  std::vector<elicit::Selector> out;
  for (const auto& name : elicit.selector)
    out.push_back(*enum_from_name(elicit::selector_names(), name));
  return out;
}

std::vector<int64_t> ElicitRecipe::question_counts() const {
  std::vector<int64_t> out;
  for (double k : elicit.questions)
    out.push_back(static_cast<int64_t>(k));
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

using Names = std::vector<std::string>;

Names training_oracles() {
  Names out;
  for (const auto& name : judges::oracle_names())
    if (judges::oracle(name).group == "train") out.push_back(name);
  return out;
}

Schema<ElicitRecipe> build_elicit_schema() {
  Schema<ElicitRecipe> s;
  s.choice(TAILOR_MEMBER(stage), Names{"elicit"})
      .doc("what to run: elicit = learn new users' preferences from a few pairwise answers")
      .required();
  s.key(TAILOR_MEMBER(seed))
      .doc(
          "seeds the reward model's initialisation, the question prompts, the posterior samplers "
          "and the random selector; same seed = same run")
      .default_value(0)
      .at_least(0);
  s.key(TAILOR_MEMBER(output_dir))
      .doc(
          "run directory: recipe.yaml, metrics.jsonl, summary.json, export/ (the reward model), "
          "users/<user>/<selector>/ (answers.jsonl, profile.json, posterior.safetensors)")
      .required();
  s.key(TAILOR_MEMBER(cache_dir))
      .doc(
          "where the candidates (candidates.json) and their features (features.h5) are kept and "
          "reused by runs with the same backbone, prompts and generate.*; empty = "
          "output_dir/cache (point several seeds of a sweep at one directory to sample once)")
      .default_value(fs::path());
  s.key(TAILOR_MEMBER(tokenizer))
      .doc("tokenizer directory: vocab.json + merges.txt, or tokenizer.json")
      .default_value(fs::path("assets/tokenizers/gpt2"));
  add_model_keys(s);
  s.key(TAILOR_MEMBER(users))
      .doc(
          "the new users to learn, each a simulated respondent: a weighted mixture of heuristic "
          "oracles, e.g. {length: {shorter_length: 1.0}, lowercase: {lowercase: 1.0}}")
      .default_value(WeightTable{});

  s.section("data", "the prompts, and where each prompt's candidate completions come from");
  s.choice(TAILOR_MEMBER(data.source), candidate_source_names())
      .doc(
          "generated: data.path holds {prompt} lines and the backbone samples "
          "generate.completions candidates per prompt; pool: data.path holds {prompt, "
          "completions: [...]} lines (strings, or objects with a \"response\"; UltraFeedback's "
          "raw lines, with \"instruction\" for the prompt, are read as they are)")
      .default_value(CandidateSource::kGenerated);
  s.key(TAILOR_MEMBER(data.path)).doc("the prompts or pool JSONL").required();
  s.choice(
       "data.template", [](auto& r) -> auto& { return r.data.prompt_template; },
       prompt_template_names())
      .doc(
          "how a prompt becomes model input: plain (as written), mistral_instruct ([INST] ...) "
          "or zephyr (<|user|> ... <|assistant|>, with a <|system|> turn for a system text)")
      .default_value(PromptTemplate::kPlain);
  s.key(TAILOR_MEMBER(data.max_length))
      .doc("tokens of prompt + completion the features see (longer ones keep their end)")
      .default_value(256)
      .at_least(2);
  s.key(TAILOR_MEMBER(data.eval_fraction))
      .doc(
          "prompts held out: the reward model's dev pairs and each user's held-out pairs come "
          "from them, the questions from the others")
      .default_value(0.25)
      .above(0)
      .below(1);

  s.section("generate", "data.source generated: the backbone's candidate completions");
  s.key(TAILOR_MEMBER(generate.completions))
      .doc("candidates per prompt (N; the paper: 128)")
      .default_value(64)
      .at_least(2);
  s.key(TAILOR_MEMBER(generate.max_new_tokens))
      .doc("tokens per candidate (EOS ends one earlier)")
      .default_value(48)
      .at_least(1);
  s.key(TAILOR_MEMBER(generate.temperature))
      .doc("sampling temperature")
      .default_value(1.0)
      .above(0);
  s.key(TAILOR_MEMBER(generate.top_k)).doc("top-k filter; 0 = off").default_value(0).at_least(0);
  s.key(TAILOR_MEMBER(generate.top_p))
      .doc("nucleus filter; 1 = off")
      .default_value(1.0)
      .above(0)
      .at_most(1);
  s.key(TAILOR_MEMBER(generate.seed))
      .doc("sampling seed, fixed so that every seed of a sweep sees the same candidates")
      .default_value(0)
      .at_least(0);

  s.section("reward",
            "the multi-reward model: features -> hidden layer (dropout) -> one head per oracle");
  s.key(TAILOR_MEMBER(reward.oracles))
      .doc(
          "one head per oracle, each trained on the pairs that oracle labels (the seed: the "
          "eight training oracles)")
      .default_value(training_oracles());
  s.key(TAILOR_MEMBER(reward.hidden_dim))
      .doc("width of the hidden layer = the dimension of a user's preference embedding")
      .default_value(128)
      .at_least(1);
  s.key(TAILOR_MEMBER(reward.dropout))
      .doc("dropout on the hidden layer while training")
      .default_value(0.5)
      .at_least(0)
      .below(1);
  s.key(TAILOR_MEMBER(reward.pairs_per_prompt))
      .doc("random candidate pairs of each prompt, each labelled by every oracle (ties skipped)")
      .default_value(32)
      .at_least(1);

  add_optimizer_keys(s);
  add_schedule_keys(s);

  s.section("train",
            "training: the multi-reward model (Bradley-Terry per head), or PReF's joint "
            "refinement of the factorisation (logistic MLE)");
  s.key(TAILOR_MEMBER(train.max_steps)).doc("optimizer steps").default_value(1000).at_least(1);
  s.key(TAILOR_MEMBER(train.batch_size)).doc("pairs per step").default_value(64).at_least(1);
  s.key(TAILOR_MEMBER(train.log_every))
      .doc("steps between progress lines and metrics.jsonl records")
      .default_value(100)
      .at_least(1);
  s.key(TAILOR_MEMBER(train.eval_every))
      .doc("steps between dev accuracies of every head; 0 = only at the end")
      .default_value(0)
      .at_least(0);
  s.key(TAILOR_MEMBER(train.checkpoint_every))
      .doc("steps between checkpoints; 0 = none")
      .default_value(0)
      .at_least(0);
  s.key(TAILOR_MEMBER(train.keep_checkpoints))
      .doc("most recent checkpoints kept on disk")
      .default_value(2)
      .at_least(1);
  s.key(TAILOR_MEMBER(train.resume))
      .doc("continue from the latest checkpoint in output_dir")
      .default_value(false);

  s.section("elicit", "the questions: what is fitted to a user's answers, the choice of pairs");
  s.choice(TAILOR_MEMBER(elicit.method), elicit_method_names())
      .doc(
          "twenty_questions: the multi-reward model, Metropolis-Hastings, information gain; "
          "pref: reward factorisation (pref.*), a logistic fit per user, uncertain pairs")
      .default_value(ElicitMethod::kTwentyQuestions);
  s.key(TAILOR_MEMBER(elicit.selector))
      .doc(
          "how each question's pair is chosen, one run per selector: twenty_questions: info_gain "
          "| volume | random; pref: active | random")
      .default_value(Names{"info_gain", "volume", "random"});
  s.key(TAILOR_MEMBER(elicit.questions))
      .doc(
          "numbers of answers K at which the held-out accuracy is reported; the loop asks the "
          "largest")
      .default_value(std::vector<double>{5, 10, 20});
  s.key(TAILOR_MEMBER(elicit.samples))
      .doc("posterior samples M per question")
      .default_value(100)
      .at_least(1);
  s.key(TAILOR_MEMBER(elicit.estimate_samples))
      .doc(
          "posterior samples E averaged for the user's estimate (profile posterior_mean, held-out "
          "accuracy): the questions' chain run on past its M samples, so no question changes; "
          "must be >= samples")
      .default_value(1000)
      .at_least(1);
  s.key(TAILOR_MEMBER(elicit.burn_in))
      .doc("Metropolis-Hastings steps discarded before the first sample")
      .default_value(1000)
      .at_least(0);
  s.key(TAILOR_MEMBER(elicit.thinning))
      .doc("Metropolis-Hastings steps between two kept samples")
      .default_value(50)
      .at_least(1);
  s.key(TAILOR_MEMBER(elicit.proposal_step))
      .doc(
          "random-walk step: each proposal adds N(0, (step^2 / d) I), a step of typical length "
          "`step` in the d-dimensional embedding (d = reward.hidden_dim)")
      .default_value(0.1)
      .above(0);
  s.key(TAILOR_MEMBER(elicit.heldout_pairs_per_prompt))
      .doc("random candidate pairs of each held-out prompt that each user labels for its accuracy")
      .default_value(32)
      .at_least(1);

  s.section("pref", "elicit.method pref: training users, the factorisation, a new user's fit");
  s.key(TAILOR_MEMBER(pref.rank))
      .doc("J, the number of base rewards (the paper: 6)")
      .default_value(6)
      .at_least(1);
  s.key(TAILOR_MEMBER(pref.training_users))
      .doc("simulated training users, each a Dirichlet mixture of reward.oracles")
      .default_value(200)
      .at_least(2);
  s.key(TAILOR_MEMBER(pref.dirichlet_alpha))
      .doc("concentration of the training users' weights (1 = uniform on the simplex)")
      .default_value(1.0)
      .above(0);
  s.key(TAILOR_MEMBER(pref.flip_probability))
      .doc("chance that a training user's weight on an oracle is negated (likes the opposite)")
      .default_value(0.5)
      .at_least(0)
      .at_most(1);
  s.key(TAILOR_MEMBER(pref.answers_per_user))
      .doc("training pairs each training user answers; the rest of the matrix is missing")
      .default_value(200)
      .at_least(1);
  s.key(TAILOR_MEMBER(pref.dev_answers_per_user))
      .doc("held-out prompts' pairs each training user answers, for the dev accuracy and AUC")
      .default_value(50)
      .at_least(1);
  s.key(TAILOR_MEMBER(pref.impute_iterations))
      .doc("most rank-J SVDs of the iterated imputation of the missing answers")
      .default_value(100)
      .at_least(1);
  s.key(TAILOR_MEMBER(pref.head_l2))
      .doc("ridge weight of the linear head fitted to the factorisation's Phi")
      .default_value(1.0)
      .above(0);
  s.key(TAILOR_MEMBER(pref.lambda_l2))
      .doc("refinement: L2 weight on the training users' lambda (the paper: 0.02)")
      .default_value(0.02)
      .at_least(0);
  s.key(TAILOR_MEMBER(pref.w_l2))
      .doc("refinement: L2 weight on the linear head")
      .default_value(1e-4)
      .at_least(0);
  s.key(TAILOR_MEMBER(pref.user_l2))
      .doc("a new user's L2 weight beta (logistic regression on their answers)")
      .default_value(1.0)
      .above(0);
  s.key(TAILOR_MEMBER(pref.new_users))
      .doc(
          "simulated new users drawn like the training users (another seed), asked besides "
          "`users`, named simulated_01, simulated_02, ...")
      .default_value(0)
      .at_least(0);
  s.spec().check_complete();
  return s;
}

void check_elicit_rules(const ResolvedConfig& c) {
  check_model_rules(c);
  const auto& users = c.get<WeightTable>("users");
  const bool pref = c.get<std::string>("elicit.method") == "pref";
  if (users.empty() && !(pref && c.get<int64_t>("pref.new_users") > 0))
    c.fail("users", "needs at least one user to ask, e.g. users: {length: {shorter_length: 1.0}}" +
                        std::string(pref ? " (or pref.new_users > 0)" : ""));
  for (const auto& [user, weights] : users) {
    try {
      judges::mixture_prefers(weights, "", "a", "a");  // validates the oracle names and weights
    } catch (const Error& e) {
      c.fail("users", "user '" + user + "': " + e.what());
    }
  }
  const auto& oracles = c.get<Names>("reward.oracles");
  if (oracles.empty()) c.fail("reward.oracles", "needs at least one oracle (one head each)");
  for (const auto& name : oracles) {
    if (std::count(oracles.begin(), oracles.end(), name) > 1)
      c.fail("reward.oracles", "'" + name + "' is listed twice");
    try {
      judges::oracle(name);
    } catch (const Error& e) {
      c.fail("reward.oracles", e.what());
    }
  }
  const auto& selectors = c.get<Names>("elicit.selector");
  const ElicitMethod method = pref ? ElicitMethod::kPref : ElicitMethod::kTwentyQuestions;
  const std::string choices = selector_choices(method);
  if (selectors.empty()) c.fail("elicit.selector", "needs at least one of " + choices);
  for (const auto& name : selectors) {
    const auto selector = enum_from_name(elicit::selector_names(), name);
    if (!selector || !method_takes(method, *selector))
      c.fail("elicit.selector", "unknown selector '" + name + "' for method " +
                                    c.get<std::string>("elicit.method") + "; expected " + choices);
    if (std::count(selectors.begin(), selectors.end(), name) > 1)
      c.fail("elicit.selector", "'" + name + "' is listed twice");
  }
  const auto& questions = c.get<std::vector<double>>("elicit.questions");
  if (questions.empty()) c.fail("elicit.questions", "needs at least one K, e.g. [5, 10, 20]");
  for (double k : questions)
    if (!(k >= 1 && k == std::floor(k) && k <= 1000))
      c.fail("elicit.questions",
             "each K must be a whole number in [1, 1000], got " + std::to_string(k));
  const auto samples = c.get<int64_t>("elicit.samples");
  const auto estimate_samples = c.get<int64_t>("elicit.estimate_samples");
  if (estimate_samples < samples)
    c.fail("elicit.estimate_samples",
           "must be >= elicit.samples (" + std::to_string(samples) + "), got " +
               std::to_string(estimate_samples) +
               ": the estimate averages the questions' chain run on past its M samples");
}

}  // namespace

const Schema<ElicitRecipe>& elicit_recipe_schema() {
  static const Schema<ElicitRecipe> schema = build_elicit_schema();
  return schema;
}

ResolvedConfig resolve_elicit_recipe(const std::string& yaml_text, const std::string& source,
                                     const std::vector<std::string>& overrides) {
  ResolvedConfig config =
      resolve_config(elicit_recipe_schema().spec(), yaml_text, source, overrides);
  check_elicit_rules(config);
  return config;
}

ElicitRecipe elicit_recipe_from_config(const ResolvedConfig& config) {
  check_elicit_rules(config);
  return elicit_recipe_schema().bind(config);
}

ElicitRecipe load_elicit_recipe(const fs::path& file, const std::vector<std::string>& overrides) {
  return elicit_recipe_from_config(
      resolve_elicit_recipe(read_file(file), file.string(), overrides));
}

std::string elicit_recipe_hash(const ElicitRecipe& recipe) {
  ElicitRecipe same_run = recipe;
  same_run.train.resume = false;
  return elicit_recipe_schema().unbind(same_run, "(recipe)").hash();
}

void check_elicit_inputs(const ElicitRecipe& r) {
  require_file("data.path", r.data.path);
  require_directory("tokenizer", r.tokenizer, {{"vocab.json", "merges.txt"}, {"tokenizer.json"}});
  if (r.model.init == ModelInit::kPretrained)
    require_directory("model.path", r.model.path, {{"config.json"}});
  // Each question asks about one prompt's candidates, and a user never gets the same prompt
  // twice: the largest K needs that many prompts outside the held-out share.
  data::JsonlReader reader(r.data.path);
  int64_t P = 0;
  for (std::string line; reader.next(line);)
    ++P;
  const int64_t held =
      P < 2 ? P : std::clamp<int64_t>(std::llround(r.data.eval_fraction * P), 1, P - 1);
  const int64_t longest = r.question_counts().back();
  if (P < 2 || longest > P - held)
    throw Error("recipe", "elicit.questions: " + std::to_string(longest) +
                              " questions need as many prompts, one per question, but " +
                              r.data.path.string() + " has " + std::to_string(P) + " prompts, " +
                              std::to_string(std::max<int64_t>(0, P - held)) +
                              " of them outside the held-out share data.eval_fraction " +
                              std::to_string(r.data.eval_fraction));
  if (fs::exists(r.output_dir) && !fs::is_directory(r.output_dir))
    throw Error("recipe",
                "output_dir: " + r.output_dir.string() + " exists and is not a directory");
}

}  // namespace tailor
