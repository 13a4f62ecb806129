#include "stages/chain/chain_recipe.h"

#include "common/atomic_file.h"
#include "common/error.h"
#include "judges/oracles.h"
#include "train/recipe/sections.h"

namespace tailor {
namespace fs = std::filesystem;
namespace {

Schema<ChainRecipe> build_chain_schema() {
  Schema<ChainRecipe> s;
  s.choice(TAILOR_MEMBER(stage), std::vector<std::string>{"chain"})
      .doc(
          "what to run: chain = elicit -> reward -> per-user DPO for new users, beside the "
          "seed's baselines, judged by the users alone")
      .required();
  s.key(TAILOR_MEMBER(seed))
      .doc("the seed of every run of the chain (elicitation, DPO); the base keeps its own")
      .default_value(0)
      .at_least(0);
  s.key(TAILOR_MEMBER(output_dir))
      .doc(
          "run directory: elicit_20q/, elicit_pref/, dpo/, baseline_n<N>/, summary.json, "
          "table.md")
      .required();
  s.key(TAILOR_MEMBER(base_recipe))
      .doc("the base's SFT recipe (stage sft, export on); trained once into base_dir")
      .required();
  s.key(TAILOR_MEMBER(base_dir))
      .doc(
          "where the base trains, outside output_dir so that every seed of a sweep shares it; "
          "an existing base_dir/export is used as it is")
      .required();
  s.key(TAILOR_MEMBER(users))
      .doc(
          "the new users, each a weighted mixture of oracles, e.g. {length: {shorter_length: "
          "1.0}}: each answers the elicitation questions and judges the win rates (the dpo "
          "runs' eval_users); nothing else of theirs reaches the chains")
      .required();
  s.key(TAILOR_MEMBER(system_prompts))
      .doc(
          "the system-prompt baseline: per user the instruction given to the base instead of "
          "training, e.g. {length: {text: \"Answer in as few words as you can.\"}}; {} = no "
          "such row")
      .default_value(StringTable{});
  s.key(TAILOR_MEMBER(twenty_questions))
      .doc("the elicit recipe of the 20 Questions chain (elicit.method twenty_questions)")
      .required();
  s.key(TAILOR_MEMBER(twenty_questions_answers))
      .doc("K: questions each user answers for 20 Questions (the seed: 20)")
      .default_value(20)
      .at_least(1);
  s.key(TAILOR_MEMBER(pref))
      .doc("the elicit recipe of the PReF chain (elicit.method pref)")
      .required();
  s.key(TAILOR_MEMBER(pref_answers))
      .doc("K: questions each user answers for PReF (the seed: 10)")
      .default_value(10)
      .at_least(1);
  s.key(TAILOR_MEMBER(dpo))
      .doc(
          "the dpo recipe of the chains and of the oracle-picked row (data.source generated): "
          "one run, one adapter per user and method")
      .required();
  s.key(TAILOR_MEMBER(baseline))
      .doc(
          "the dpo recipe of baseline DPO: n prompts, two random samples each, labelled by the "
          "user's oracle (generate.pick random), one run per n")
      .required();
  s.key(TAILOR_MEMBER(baseline_prompts))
      .doc("the n of the baseline DPO runs (the seed: 5, 10, 20)")
      .default_value(std::vector<double>{5, 10, 20});
  s.key(TAILOR_MEMBER(baseline_epochs))
      .doc("epochs over a baseline's n pairs (the seed: 5); each epoch is one step of n pairs")
      .default_value(5)
      .at_least(1);
  s.spec().check_complete();
  return s;
}

void check_chain_rules(const ResolvedConfig& c) {
  const auto& users = c.get<WeightTable>("users");
  if (users.empty())
    c.fail("users", "needs at least one user, e.g. {length: {shorter_length: 1.0}}");
  for (const auto& [user, weights] : users) {
    if (user.find('@') != std::string::npos)
      c.fail("users", "user '" + user +
                          "': '@' separates a user from a method in the runs' "
                          "adapter names; choose a name without it");
    try {
      judges::mixture_prefers(weights, "", "a", "a");
    } catch (const Error& e) {
      c.fail("users", "user '" + user + "': " + e.what());
    }
  }
  const auto& system_prompts = c.get<StringTable>("system_prompts");
  if (!system_prompts.empty() && system_prompts.size() != users.size())
    c.fail("system_prompts", "name every user or none: the table has one system-prompt row");
  for (const auto& [user, fields] : system_prompts) {
    if (!users.count(user)) c.fail("system_prompts", "user '" + user + "' is not in users");
    if (fields.size() != 1 || !fields.count("text") || fields.at("text").empty())
      c.fail("system_prompts", "user '" + user + "': expected {text: \"the instruction\"}");
  }
  for (double n : c.get<std::vector<double>>("baseline_prompts"))
    if (n < 1 || n != static_cast<double>(static_cast<int64_t>(n)))
      c.fail("baseline_prompts", "each n must be a whole number of prompts >= 1");
}

}  // namespace

const Schema<ChainRecipe>& chain_recipe_schema() {
  static const Schema<ChainRecipe> schema = build_chain_schema();
  return schema;
}

ResolvedConfig resolve_chain_recipe(const std::string& yaml_text, const std::string& source,
                                    const std::vector<std::string>& overrides) {
  ResolvedConfig config =
      resolve_config(chain_recipe_schema().spec(), yaml_text, source, overrides);
  check_chain_rules(config);
  return config;
}

ChainRecipe chain_recipe_from_config(const ResolvedConfig& config) {
  check_chain_rules(config);
  return chain_recipe_schema().bind(config);
}

void check_chain_inputs(const ChainRecipe& r) {
  require_file("base_recipe", r.base_recipe);
  require_file("twenty_questions", r.twenty_questions);
  require_file("pref", r.pref);
  require_file("dpo", r.dpo);
  require_file("baseline", r.baseline);
  if (fs::exists(r.output_dir) && !fs::is_directory(r.output_dir))
    throw Error("recipe",
                "output_dir: " + r.output_dir.string() + " exists and is not a directory");
}

}  // namespace tailor
