#include "stages/dpo/dpo_recipe.h"

#include <utility>

#include "common/atomic_file.h"
#include "common/error.h"
#include "judges/oracles.h"
#include "judges/reward_judge.h"
#include "train/recipe/sections.h"

namespace tailor {
namespace fs = std::filesystem;
const EnumNames<PairSource>& pair_source_names() {
  static const EnumNames<PairSource> table = {{"pairs", PairSource::kPairs},
                                              {"generated", PairSource::kGenerated},
                                              {"pool", PairSource::kPool}};
  return table;
}

const std::string& to_string(PairSource source) {
  return enum_name(pair_source_names(), source);
}

const EnumNames<PairPick>& pair_pick_names() {
  static const EnumNames<PairPick> table = {{"best_worst", PairPick::kBestWorst},
                                            {"random", PairPick::kRandom}};
  return table;
}

const EnumNames<InvalidAnswers>& invalid_answers_names() {
  static const EnumNames<InvalidAnswers> table = {{"lose", InvalidAnswers::kLose},
                                                  {"resample", InvalidAnswers::kResample}};
  return table;
}

namespace {

// The eval user judging row `name`: the entry of that name, or of the part before its last '@'
// ("length@20q" -> "length"); "" when neither is in eval_users.
std::string eval_user_of(const WeightTable& eval_users, const std::string& name) {
  if (eval_users.count(name)) return name;
  const size_t at = name.rfind('@');
  if (at != std::string::npos && eval_users.count(name.substr(0, at))) return name.substr(0, at);
  return {};
}

}  // namespace

std::string eval_judge_of(const DpoRecipe& r, const std::string& adapter) {
  if (r.eval_users.empty())
    return r.users.count(adapter) || r.reward_users.count(adapter) ? adapter : std::string();
  return eval_user_of(r.eval_users, adapter);
}

bool eval_judge_is_training_judge(const DpoRecipe& r, const std::string& adapter,
                                  const std::string& eval_judge) {
  if (r.eval_users.empty()) return eval_judge == adapter;
  const auto trained = r.users.find(adapter);
  const auto judge = r.eval_users.find(eval_judge);
  return trained != r.users.end() && judge != r.eval_users.end() &&
         trained->second == judge->second;
}

namespace {

using Names = std::vector<std::string>;

Schema<DpoRecipe> build_dpo_schema() {
  Schema<DpoRecipe> s;
  s.choice(TAILOR_MEMBER(stage), Names{"dpo"})
      .doc("what to run: dpo = per-user DPO, one LoRA adapter per user on one frozen base")
      .required();
  s.key(TAILOR_MEMBER(seed))
      .doc("seeds the adapters' initialization and the pair order; same seed = same run")
      .default_value(0)
      .at_least(0);
  s.key(TAILOR_MEMBER(output_dir))
      .doc("run directory: recipe.yaml, pairs.jsonl, metrics.jsonl, summary.json, export/users/")
      .required();
  s.key(TAILOR_MEMBER(tokenizer))
      .doc("tokenizer directory: vocab.json + merges.txt, or tokenizer.json")
      .default_value(fs::path("assets/tokenizers/gpt2"));
  add_model_keys(s);
  add_lora_keys(s);
  s.key(TAILOR_MEMBER(users))
      .doc(
          "simulated users, each a weighted mixture of heuristic oracles, e.g. {alice: "
          "{shorter_length: 1.0}, bob: {new_lines: 0.7, lowercase: 0.3}}; they label "
          "data.source generated and judge the win rates")
      .default_value(WeightTable{});
  s.key(TAILOR_MEMBER(reward_users))
      .doc(
          "simulated users judged by a tailor reward export, e.g. {carol: {model: "
          "runs/rm_bt/export}, dave: {model: runs/rm_vpl/export, context: dave.jsonl}}; VPL needs "
          "context (the user's {prompt, chosen, rejected} answers) and, unless the export holds "
          "a LoRA adapter, context_encoder (the reward run's initial model); as `users`, but a "
          "name may be in only one of the two")
      .default_value(StringTable{});
  s.key(TAILOR_MEMBER(eval_users))
      .doc(
          "the judges of the win rates and the cross-user matrix, oracle mixtures named apart "
          "from the users who picked the training pairs, e.g. {length: {shorter_length: 1.0}}; "
          "adapter `length` or `length@20q` is judged by `length`; empty = each adapter's "
          "training judge judges it too (an upper bound, and the table says so)")
      .default_value(WeightTable{});
  s.key(TAILOR_MEMBER(system_prompt_rows))
      .doc(
          "the seed's system-prompt baseline: rows of the win rates that are the base itself, "
          "untrained, with a system text (data.template zephyr gives it a system turn), e.g. "
          "{length@system: {text: \"Answer in as few words as you can.\"}}; judged by "
          "eval_users as an adapter of that name would be")
      .default_value(StringTable{});

  s.section("data", "preference pairs: a per-user JSONL, or the base's samples judged by users");
  s.choice(TAILOR_MEMBER(data.source), pair_source_names())
      .doc(
          "pairs: data.path holds {user, prompt, chosen, rejected} lines; generated: data.path "
          "holds {prompt} lines, the base samples answers and the users (`users`, `reward_users`) "
          "pick pairs; pool: data.path holds {prompt, completions: [...]} lines (UltraFeedback's "
          "raw layout too) or labelled pairs {prompt, chosen, rejected}, and each user's judge "
          "picks (relabels) pairs among each prompt's answers, as for generated")
      .default_value(PairSource::kPairs);
  s.key(TAILOR_MEMBER(data.path)).doc("the pairs or prompts JSONL").required();
  s.choice(
       "data.template", [](auto& r) -> auto& { return r.data.prompt_template; },
       prompt_template_names())
      .doc(
          "how a prompt becomes model input: plain (as written), mistral_instruct ([INST] ...) "
          "or zephyr (<|user|> ... <|assistant|>, with a <|system|> turn for a system text)")
      .default_value(PromptTemplate::kPlain);
  s.key(TAILOR_MEMBER(data.max_length))
      .doc("tokens of prompt + response + EOS; longer sequences lose their end")
      .default_value(256)
      .at_least(2);
  s.key(TAILOR_MEMBER(data.pad_to_max_length))
      .doc(
          "pad every batch to data.max_length instead of its longest sequence: one shape for "
          "every step, so sums do not depend on which users share a batch (slower)")
      .default_value(false);
  s.key(TAILOR_MEMBER(data.eval_fraction))
      .doc("held out for evaluation: of each user's pairs (pairs) or of the prompts (generated)")
      .default_value(0.1)
      .at_least(0)
      .below(1);
  s.key(TAILOR_MEMBER(data.train_prompts))
      .doc(
          "data.source generated: sample and train on only this many of the training prompts, "
          "chosen by a permutation seeded by `seed` (the seed's baseline DPO: n = 5, 10, 20); "
          "0 = all")
      .default_value(0)
      .at_least(0);

  s.section("generate", "data.source generated: the base's samples that users judge");
  s.key(TAILOR_MEMBER(generate.completions))
      .doc("samples per prompt (K); each user compares them all")
      .default_value(4)
      .at_least(2);
  s.key(TAILOR_MEMBER(generate.max_new_tokens))
      .doc("tokens per sample (EOS ends one earlier)")
      .default_value(64)
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
  s.choice(TAILOR_MEMBER(generate.pick), pair_pick_names())
      .doc(
          "how a user picks pairs among a prompt's samples: best_worst (best vs worst by the "
          "user's votes, then second best vs second worst, ...) or random (the prompt's first "
          "two samples, two independent draws, labelled by the user: the seed's baseline DPO; "
          "a tie gives no pair)")
      .default_value(PairPick::kBestWorst);
  s.key(TAILOR_MEMBER(generate.pairs_per_prompt))
      .doc(
          "pairs each user takes from one prompt's samples: best vs worst by the user's votes, "
          "then second best vs second worst, ...; ties are skipped")
      .default_value(1)
      .at_least(1);
  s.key(TAILOR_MEMBER(generate.seed))
      .doc("sampling seed, fixed so that every training seed sees the same pairs")
      .default_value(0)
      .at_least(0);
  s.key(TAILOR_MEMBER(generate.rounds))
      .doc(
          "rounds of pairs (iterative, on-policy DPO): round 1 judges the base's samples; each "
          "later round samples generate.completions answers to every training prompt from each "
          "user's adapter as trained so far, and the user's judge picks that round's pairs from "
          "them; train.max_steps is split evenly over the rounds; 1 = the base's samples only")
      .default_value(1)
      .at_least(1);

  s.section("dpo", "the preference loss (Rafailov et al. 2023; IPO: Azar et al. 2023)");
  s.choice(TAILOR_MEMBER(dpo.type), dpo_loss_type_names())
      .doc(
          "sigmoid: -log sigmoid(beta x margin); ipo: (margin - 1 / (2 beta))^2 on log-probs "
          "averaged per response token (TRL's IPO); ipo_sum: the same on summed log-probs")
      .default_value(DpoLossType::kSigmoid);
  s.key(TAILOR_MEMBER(dpo.beta))
      .doc("strength of the KL tie to the base (the seed's Mistral runs: 0.01)")
      .default_value(0.1)
      .above(0);
  s.key(TAILOR_MEMBER(dpo.label_smoothing))
      .doc("conservative DPO: the label is wrong with this probability (sigmoid only); 0 = off")
      .default_value(0.0)
      .at_least(0)
      .below(0.5);
  s.key(TAILOR_MEMBER(dpo.sft_weight))
      .doc("adds weight x the chosen response's NLL per token (TRL's rpo_alpha); 0 = off")
      .default_value(0.0)
      .at_least(0);
  s.key(TAILOR_MEMBER(dpo.precompute_reference))
      .doc(
          "compute the reference (base) log-probs of every training pair once before training, "
          "each distinct pair once, instead of in every step (TRL's precompute_ref_log_probs)")
      .default_value(true);

  add_optimizer_keys(s);
  add_schedule_keys(s);

  s.section("train", "the training loop: every step trains every user");
  s.key(TAILOR_MEMBER(train.max_steps)).doc("optimizer steps").default_value(100).at_least(1);
  s.key(TAILOR_MEMBER(train.pairs_per_user))
      .doc(
          "pairs of each user in one step (all ranks together; a multiple of the number of "
          "ranks); each user's loss is the mean over its pairs")
      .default_value(4)
      .at_least(1);
  s.key(TAILOR_MEMBER(train.micro_batch_size))
      .doc(
          "pairs per forward/backward pass on one rank (gradients accumulate over a step's "
          "passes); 0 = all of a rank's pairs in one pass")
      .default_value(0)
      .at_least(0);
  s.choice(TAILOR_MEMBER(train.precision), precision_names())
      .doc(
          "fp32 | bf16_autocast (fp32 weights, bf16 matmuls) | bf16 (bf16 weights, fp32 master "
          "copies of the adapters in the optimizer); log-probs and losses in fp32/fp64 | fp64 "
          "(float64 throughout, slow: for checking that two ways of running agree)")
      .default_value(Precision::kFp32);
  s.key(TAILOR_MEMBER(train.log_every))
      .doc("steps between progress lines and metrics.jsonl records")
      .default_value(10)
      .at_least(1);
  s.key(TAILOR_MEMBER(train.eval_every))
      .doc("steps between held-out margin evaluations; 0 = only at the end")
      .default_value(0)
      .at_least(0);
  s.key(TAILOR_MEMBER(train.checkpoint_every))
      .doc("steps between checkpoints (one is always written at the end); 0 = only at the end")
      .default_value(0)
      .at_least(0);
  s.key(TAILOR_MEMBER(train.keep_checkpoints))
      .doc("most recent checkpoints kept on disk")
      .default_value(2)
      .at_least(1);
  s.key(TAILOR_MEMBER(train.resume))
      .doc(
          "continue from the latest checkpoint in output_dir (bit-identical to an uninterrupted "
          "run); none there = start from step 0")
      .default_value(false);

  s.section("eval", "win rates on held-out prompts: each adapter's samples vs the base's");
  s.key(TAILOR_MEMBER(eval.prompts))
      .doc("held-out prompts to sample (the seed: 20); 0 = all held-out prompts")
      .default_value(20)
      .at_least(0);
  s.key(TAILOR_MEMBER(eval.completions))
      .doc(
          "samples per prompt from each adapter and from the base (the seed: 20); 0 = no win rates")
      .default_value(20)
      .at_least(0);
  s.key(TAILOR_MEMBER(eval.max_new_tokens)).doc("tokens per sample").default_value(64).at_least(1);
  s.key(TAILOR_MEMBER(eval.temperature))
      .doc("sampling temperature; 0 = greedy (one distinct sample per prompt)")
      .default_value(1.0)
      .at_least(0);
  s.key(TAILOR_MEMBER(eval.top_k)).doc("top-k filter; 0 = off").default_value(0).at_least(0);
  s.key(TAILOR_MEMBER(eval.top_p))
      .doc("nucleus filter; 1 = off")
      .default_value(1.0)
      .above(0)
      .at_most(1);
  s.key(TAILOR_MEMBER(eval.seed))
      .doc("sampling seed; the adapter's and the base's samples use the same seeds")
      .default_value(1)
      .at_least(0);
  s.key(TAILOR_MEMBER(eval.cross_user))
      .doc("also judge every user's adapter by every other user (the cross-user matrix)")
      .default_value(true);
  s.choice(TAILOR_MEMBER(eval.invalid), invalid_answers_names())
      .doc(
          "answers that are empty or stop at eval.max_new_tokens without EOS never win: lose "
          "(such an answer loses to a valid one, two of them tie) or resample (draw it again, up "
          "to eval.resample_tries times, then lose); counted per user in summary.json")
      .default_value(InvalidAnswers::kLose);
  s.key(TAILOR_MEMBER(eval.resample_tries))
      .doc("eval.invalid resample: new draws of an invalid answer before it counts as invalid")
      .default_value(3)
      .at_least(1);

  s.section("dist", "data parallelism over the ranks of `mpirun -np N tailor run`");
  s.key(TAILOR_MEMBER(dist.collective_timeout_s))
      .doc(
          "seconds a collective may wait for the other ranks before every rank exits naming it; "
          "0 = wait forever")
      .default_value(600.0)
      .at_least(0);
  s.key(TAILOR_MEMBER(dist.zero_stage))
      .doc(
          "0: every rank keeps all adapters' AdamW state; 1: ZeRO-1, each rank keeps the fp32 "
          "master and AdamW moments of its 1/N of the adapters, gradients reduce-scattered; 2: "
          "ZeRO-2, also the gradients sharded during backward")
      .default_value(0);

  s.section("export", "PEFT adapters at the end of the run: output_dir/export/users/<user>/");
  s.key(
       "export.enabled", [](auto& r) -> auto& { return r.export_.enabled; })
      .doc("write one PEFT adapter directory per user (plus the tokenizer)")
      .default_value(true);
  s.key(
       "export.merge_lora", [](auto& r) -> auto& { return r.export_.merge_lora; })
      .doc(
          "not supported by this stage (one merged model per user is large): use `tailor export "
          "--checkpoint RUN --user NAME --merge-lora`")
      .default_value(false);
  s.spec().check_complete();
  return s;
}

void check_dpo_rules(const ResolvedConfig& c) {
  check_model_rules(c);
  if (!c.get<bool>("lora.enabled"))
    c.fail("lora.enabled", "the dpo stage trains one LoRA adapter per user; set it to true");
  if (c.get<bool>("export.merge_lora"))
    c.fail("export.merge_lora",
           "the dpo stage exports one adapter per user; merge one with `tailor export "
           "--checkpoint RUN --user NAME --merge-lora --out DIR`");
  const int64_t zero_stage = c.get<int64_t>("dist.zero_stage");
  if (zero_stage == 3)
    c.fail("dist.zero_stage",
           "3 is not built for the dpo stage: the base is frozen and replicated on every rank, "
           "and ZeRO-3 of the adapters alone is not implemented; use 1 or 2 (the adapters' "
           "optimizer state, and at 2 their gradients, sharded)");
  if (zero_stage < 0 || zero_stage > 3)
    c.fail("dist.zero_stage", "must be 0 (replicated), 1 or 2, got " + std::to_string(zero_stage));
  const int64_t rounds = c.get<int64_t>("generate.rounds");
  if (rounds > 1 && c.get("data.source", pair_source_names()) != PairSource::kGenerated)
    c.fail("generate.rounds",
           "rounds of pairs sample the adapters and need data.source generated (a pairs file is "
           "one fixed set of pairs); set it to 1");
  if (rounds > c.get<int64_t>("train.max_steps"))
    c.fail("generate.rounds", std::to_string(rounds) + " rounds need at least as many steps; " +
                                  "train.max_steps is " +
                                  std::to_string(c.get<int64_t>("train.max_steps")));
  const auto& users = c.get<WeightTable>("users");
  for (const auto& [user, weights] : users) {
    try {
      // Validates the oracle names and weights (an empty comparison is fine for that).
      judges::mixture_prefers(weights, "", "a", "a");
    } catch (const Error& e) {
      c.fail("users", "user '" + user + "': " + e.what());
    }
  }
  const auto& reward_users = c.get<StringTable>("reward_users");
  for (const auto& [user, fields] : reward_users) {
    if (users.count(user))
      c.fail("reward_users", "user '" + user +
                                 "' is also in users; a user has one judge: an oracle mixture "
                                 "(users) or a reward model (reward_users)");
    judges::reward_judge_spec(fields, "reward_users." + user, c.where("reward_users"));
  }
  const PairSource source = c.get("data.source", pair_source_names());
  const auto& eval_users = c.get<WeightTable>("eval_users");
  for (const auto& [user, weights] : eval_users) {
    try {
      judges::mixture_prefers(weights, "", "a", "a");
    } catch (const Error& e) {
      c.fail("eval_users", "user '" + user + "': " + e.what());
    }
  }
  if (source != PairSource::kPairs && !eval_users.empty()) {
    // Every adapter of the run needs a judge among eval_users (see eval_judge_of).
    std::vector<std::string> adapters;
    for (const auto& [user, weights] : users)
      adapters.push_back(user);
    for (const auto& [user, fields] : reward_users)
      adapters.push_back(user);
    for (const auto& adapter : adapters) {
      const size_t at = adapter.rfind('@');
      if (eval_user_of(eval_users, adapter).empty())
        c.fail(
            "eval_users",
            "no judge for adapter '" + adapter + "': name an eval user '" + adapter + "'" +
                (at == std::string::npos ? std::string() : " or '" + adapter.substr(0, at) + "'") +
                " (an adapter 'NAME@METHOD' is judged by eval user NAME)");
    }
  }
  for (const auto& [row, fields] : c.get<StringTable>("system_prompt_rows")) {
    if (users.count(row) || reward_users.count(row))
      c.fail("system_prompt_rows", "row '" + row + "' is also a user with an adapter");
    if (fields.size() != 1 || !fields.count("text") || fields.at("text").empty())
      c.fail("system_prompt_rows", "row '" + row + "': expected {text: \"the system text\"}");
    if (eval_user_of(eval_users, row).empty())
      c.fail("system_prompt_rows", "row '" + row +
                                       "' has no judge: name it in eval_users, or name the row "
                                       "'USER@system' for an eval user USER");
  }
  if (c.get<int64_t>("data.train_prompts") > 0 && source == PairSource::kPairs)
    c.fail("data.train_prompts", "applies to data.source generated and pool; set it to 0");
  if (source != PairSource::kPairs && users.empty() && reward_users.empty())
    c.fail(
        "users",
        "data.source generated and pool need at least one user to judge the answers, e.g. users: "
        "{alice: {shorter_length: 1.0}} or reward_users: {carol: {model: runs/rm/export}}");
  if (source != PairSource::kPairs && c.get<double>("data.eval_fraction") <= 0 &&
      c.get<int64_t>("eval.completions") > 0)
    c.fail("data.eval_fraction",
           "the win rates need held-out prompts; set it above 0 or eval.completions: 0");
  const DpoLossType type = c.get("dpo.type", dpo_loss_type_names());
  if (type != DpoLossType::kSigmoid && c.get<double>("dpo.label_smoothing") != 0.0)
    c.fail("dpo.label_smoothing",
           "applies to dpo.type sigmoid only; set it to 0 for ipo and ipo_sum");
}

}  // namespace

const Schema<DpoRecipe>& dpo_recipe_schema() {
  static const Schema<DpoRecipe> schema = build_dpo_schema();
  return schema;
}

ResolvedConfig resolve_dpo_recipe(const std::string& yaml_text, const std::string& source,
                                  const std::vector<std::string>& overrides) {
  ResolvedConfig config = resolve_config(dpo_recipe_schema().spec(), yaml_text, source, overrides);
  check_dpo_rules(config);
  return config;
}

DpoRecipe dpo_recipe_from_config(const ResolvedConfig& config) {
  check_dpo_rules(config);
  return dpo_recipe_schema().bind(config);
}

DpoRecipe load_dpo_recipe(const fs::path& file, const std::vector<std::string>& overrides) {
  return dpo_recipe_from_config(resolve_dpo_recipe(read_file(file), file.string(), overrides));
}

std::string dpo_recipe_hash(const DpoRecipe& recipe) {
  DpoRecipe same_run = recipe;
  same_run.train.resume = false;
  same_run.dist.zero_stage = 0;  // the same run whether its optimizer state is sharded or not
  return dpo_recipe_schema().unbind(same_run, "(recipe)").hash();
}

void check_dpo_inputs(const DpoRecipe& r) {
  require_file("data.path", r.data.path);
  require_directory("tokenizer", r.tokenizer, {{"vocab.json", "merges.txt"}, {"tokenizer.json"}});
  if (r.model.init == ModelInit::kPretrained)
    require_directory("model.path", r.model.path, {{"config.json"}});
  for (const auto& [user, fields] : r.reward_users) {
    const std::string key = "reward_users." + user;
    judges::check_reward_judge_inputs(judges::reward_judge_spec(fields, key), key);
  }
  if (fs::exists(r.output_dir) && !fs::is_directory(r.output_dir))
    throw Error("recipe",
                "output_dir: " + r.output_dir.string() + " exists and is not a directory");
}

}  // namespace tailor
