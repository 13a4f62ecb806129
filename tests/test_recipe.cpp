// Recipe schema, SFT recipe, overrides, resolved output and `tailor run` front end.
// Expected values are written out by hand from the recipe specification (issue #2 and
// recipes/quickstart.yaml), not taken from the code's own output.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "cli/commands.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "stages/registry.h"
#include "stages/sft/sft_recipe.h"
#include "test_support.h"
#include "train/recipe/schema.h"

namespace tailor {
namespace {
namespace fs = std::filesystem;

const char* kSource = "recipes/test.yaml";

// The smallest valid SFT recipe: the three required keys.
const char* kMinimal =
    "stage: sft\n"
    "output_dir: runs/test\n"
    "data:\n"
    "  train: data/train.jsonl\n";

std::string resolve_error(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return test::error_of([&] { resolve_sft_recipe(text, kSource, overrides); });
}

void write_text(const fs::path& path, const std::string& text) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// A fresh scratch directory per test, removed afterwards.
class RecipeFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("tailor_recipe_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// --- formatting helpers ------------------------------------------------------------------------

TEST(RecipeFormatFloat, ShortestFormThatReadsBack) {
  EXPECT_EQ(format_float(0.0003), "0.0003");
  EXPECT_EQ(format_float(1e-8), "1.0e-8");
  EXPECT_EQ(format_float(3e-5), "3.0e-5");
  EXPECT_EQ(format_float(1.0), "1.0");
  EXPECT_EQ(format_float(16.0), "16.0");
  EXPECT_EQ(format_float(0.1), "0.1");
  EXPECT_EQ(format_float(-2.5), "-2.5");
  EXPECT_EQ(format_float(1e20), "1.0e+20");
  EXPECT_EQ(format_float(0.0), "0.0");
  for (double v : {1.0 / 3.0, 0.999, 2.0 / 7.0 * 1e-12, 123456789.125, 6.02214076e23}) {
    EXPECT_EQ(std::strtod(format_float(v).c_str(), nullptr), v) << format_float(v);
  }
}

TEST(RecipeClosestMatch, FindsTyposOnly) {
  const std::vector<std::string> keys = {"lr", "weight_decay", "beta1", "beta2", "eps"};
  EXPECT_EQ(closest_match("weight_decy", keys), "weight_decay");
  EXPECT_EQ(closest_match("wieght_decay", keys), "weight_decay");
  EXPECT_EQ(closest_match("bta1", keys), "beta1");
  EXPECT_EQ(closest_match("momentum", keys), "");
  EXPECT_EQ(closest_match("trian", {"model", "train", "data"}), "train");  // a swap is one edit
}

TEST(RecipeOverrideSyntax, SplitsAtFirstEquals) {
  EXPECT_EQ(split_override("a.b=c=d"), std::make_pair(std::string("a.b"), std::string("c=d")));
  EXPECT_EQ(split_override("data.eval="), std::make_pair(std::string("data.eval"), std::string()));
  EXPECT_CONTAINS(test::error_of([] { split_override("foo"); }),
                  "override 'foo': expected KEY=VALUE");
  EXPECT_CONTAINS(test::error_of([] { split_override("=3"); }),
                  "override '=3': expected KEY=VALUE");
}

// --- the schema itself -------------------------------------------------------------------------

TEST(RecipeSchema, EveryKeyDocumentedWithDefaultOrRequired) {
  const SchemaSpec& spec = sft_recipe_schema().spec();
  EXPECT_NO_THROW(spec.check_complete());
  std::vector<std::string> required;
  for (const auto& key : spec.keys()) {
    if (key.required) required.push_back(key.path);
  }
  EXPECT_EQ(required, (std::vector<std::string>{"stage", "output_dir", "data.train"}));
  // The help text derives from the schema: every key appears in it with its doc.
  const std::string reference = spec.reference();
  for (const auto& key : spec.keys()) {
    EXPECT_CONTAINS(reference, key.path);
    EXPECT_CONTAINS(reference, key.doc);
  }
  EXPECT_CONTAINS(reference, "float > 0");
  EXPECT_CONTAINS(reference, "one of cosine|linear|constant");
}

TEST(RecipeSchema, RejectsIncompleteDeclarations) {
  Schema<ExportSection> s;
  s.key(
       "enabled", [](auto& r) -> auto& { return r.enabled; })
      .doc("x");  // no default
  EXPECT_THROW(s.spec().check_complete(), std::logic_error);
  Schema<ModelSection> t;
  t.key(
       "dropout", [](auto& r) -> auto& { return r.dropout; })
      .doc("x")
      .default_value(1.5)
      .at_least(0)
      .below(1);  // default out of its own range
  EXPECT_THROW(t.spec().check_complete(), std::logic_error);
  Schema<SftRecipe> u;
  // A key inside an undeclared section.
  EXPECT_THROW(u.key(
                   "model.dropout", [](auto& r) -> auto& { return r.model.dropout; }),
               std::logic_error);
}

// --- valid recipes -----------------------------------------------------------------------------

TEST(RecipeLoad, MinimalRecipeGetsTheDocumentedDefaults) {
  const SftRecipe r = sft_recipe_from_config(resolve_sft_recipe(kMinimal, kSource));
  EXPECT_EQ(r.stage, "sft");
  EXPECT_EQ(r.seed, 1234);
  EXPECT_EQ(r.output_dir, fs::path("runs/test"));
  EXPECT_EQ(r.tokenizer, fs::path("assets/tokenizers/gpt2"));
  EXPECT_EQ(r.model.init, ModelInit::kRandom);
  EXPECT_EQ(r.model.path, fs::path(""));
  EXPECT_EQ(r.model.preset, "gpt2-tiny");
  EXPECT_EQ(r.model.n_layer, 0);
  EXPECT_EQ(r.model.n_head, 0);
  EXPECT_EQ(r.model.n_embd, 0);
  EXPECT_EQ(r.model.n_positions, 0);
  EXPECT_EQ(r.model.dropout, 0.0);
  EXPECT_TRUE(r.lora.enabled);
  EXPECT_EQ(r.lora.rank, 8);
  EXPECT_EQ(r.lora.alpha, 16.0);
  EXPECT_EQ(r.lora.dropout, 0.0);
  EXPECT_FALSE(r.lora.rslora);
  EXPECT_EQ(r.lora.targets, (std::vector<std::string>{"c_attn", "c_proj", "c_fc"}));
  EXPECT_EQ(r.data.train, fs::path("data/train.jsonl"));
  EXPECT_EQ(r.data.eval, fs::path(""));
  EXPECT_EQ(r.data.format, DataFormat::kText);
  EXPECT_EQ(r.data.max_length, 128);
  EXPECT_EQ(r.data.eval_fraction, 0.0);
  EXPECT_EQ(r.optimizer.lr, 3.0e-4);
  EXPECT_EQ(r.optimizer.weight_decay, 0.01);
  EXPECT_EQ(r.optimizer.beta1, 0.9);
  EXPECT_EQ(r.optimizer.beta2, 0.999);
  EXPECT_EQ(r.optimizer.eps, 1.0e-8);
  EXPECT_EQ(r.optimizer.grad_clip, 1.0);
  EXPECT_EQ(r.schedule.type, ScheduleType::kCosine);
  EXPECT_EQ(r.schedule.warmup_steps, 10);
  EXPECT_EQ(r.schedule.min_lr_ratio, 0.0);
  EXPECT_EQ(r.train.max_steps, 200);
  EXPECT_EQ(r.train.micro_batch_size, 8);
  EXPECT_EQ(r.train.grad_accum, 1);
  EXPECT_EQ(r.train.precision, Precision::kFp32);
  EXPECT_EQ(r.train.log_every, 10);
  EXPECT_EQ(r.train.eval_every, 50);
  EXPECT_EQ(r.train.eval_batches, 8);
  EXPECT_EQ(r.train.checkpoint_every, 50);
  EXPECT_EQ(r.train.keep_checkpoints, 2);
  EXPECT_FALSE(r.train.resume);
  EXPECT_TRUE(r.export_.enabled);
  EXPECT_FALSE(r.export_.merge_lora);
}

TEST(RecipeLoad, ExplicitValuesOfEveryTypeAreRead) {
  const std::string text = std::string(kMinimal) +
                           "seed: 7\n"
                           "model:\n"
                           "  init: pretrained\n"
                           "  path: /models/gpt2\n"
                           "  dropout: 0.1\n"
                           "lora:\n"
                           "  enabled: false\n"
                           "  targets:\n"
                           "    - c_attn\n"
                           "optimizer:\n"
                           "  lr: 1e-3\n"      // integer-looking exponent forms are numbers too
                           "  grad_clip: 0\n"  // an integer where a float is expected
                           "schedule: {type: linear, warmup_steps: 0}\n"
                           "train:\n"
                           "  precision: bf16_autocast\n"
                           "  resume: True\n";
  const SftRecipe r = sft_recipe_from_config(resolve_sft_recipe(text, kSource));
  EXPECT_EQ(r.seed, 7);
  EXPECT_EQ(r.model.init, ModelInit::kPretrained);
  EXPECT_EQ(r.model.path, fs::path("/models/gpt2"));
  EXPECT_EQ(r.model.dropout, 0.1);
  EXPECT_FALSE(r.lora.enabled);
  EXPECT_EQ(r.lora.targets, std::vector<std::string>{"c_attn"});
  EXPECT_EQ(r.optimizer.lr, 1e-3);
  EXPECT_EQ(r.optimizer.grad_clip, 0.0);
  EXPECT_EQ(r.schedule.type, ScheduleType::kLinear);
  EXPECT_EQ(r.schedule.warmup_steps, 0);
  EXPECT_EQ(r.train.precision, Precision::kBf16Autocast);
  EXPECT_TRUE(r.train.resume);
}

// Whether a YAML document sets the dotted key path ("optimizer.lr").
bool sets_path(const YAML::Node& node, const std::string& path) {
  if (!node.IsMap()) return false;
  const auto dot = path.find('.');
  if (dot == std::string::npos) return node[path].IsDefined();
  return sets_path(node[path.substr(0, dot)], path.substr(dot + 1));
}

TEST(RecipeLoad, QuickstartRecipeIsValidAndSetsEveryKey) {
  const fs::path file = fs::path(TAILOR_SOURCE_DIR) / "recipes/quickstart.yaml";
  const SftRecipe r = load_sft_recipe(file);
  EXPECT_EQ(r.data.train, fs::path("assets/datasets/quickstart/train.jsonl"));
  EXPECT_EQ(r.data.eval, fs::path("assets/datasets/quickstart/eval.jsonl"));
  EXPECT_EQ(r.output_dir, fs::path("runs/quickstart"));
  EXPECT_FALSE(r.lora.enabled);       // trains a random GPT-2 from scratch (full fine-tune)
  EXPECT_EQ(r.samples.prompts, 100);  // ends with greedy answers and their exact-match rate
  // A complete, documented example: every key of the schema is written out in the file.
  const YAML::Node doc = YAML::LoadFile(file.string());
  for (const auto& key : sft_recipe_schema().spec().keys()) {
    EXPECT_TRUE(sets_path(doc, key.path)) << "recipes/quickstart.yaml does not set " << key.path;
  }
}

TEST_F(RecipeFiles, LoadFromFileNamesTheFileInErrors) {
  const fs::path file = dir_ / "bad.yaml";
  write_text(file, std::string(kMinimal) + "optimizer:\n  lr: fast\n");
  EXPECT_EQ(test::error_of([&] { load_sft_recipe(file); }),
            "[recipe] " + file.string() + ":6: optimizer.lr: expected a number > 0, got \"fast\"");
}

// --- each kind of mistake ----------------------------------------------------------------------

TEST(RecipeErrors, WrongTypeNamesFileLineKeyAndExpectation) {
  const std::string text = std::string(kMinimal) +  // lines 1-4
                           "optimizer:\n"           // 5
                           "  weight_decay: 0.1\n"  // 6
                           "  lr: fast\n";          // 7
  EXPECT_EQ(resolve_error(text),
            "[recipe] recipes/test.yaml:7: optimizer.lr: expected a number > 0, got \"fast\"");
}

TEST(RecipeErrors, UnknownKeySuggestsTheClosestKnownKey) {
  const std::string text = std::string(kMinimal) + "optimizer:\n  weight_decy: 0.1\n";
  EXPECT_EQ(resolve_error(text),
            "[recipe] recipes/test.yaml:6: optimizer.weight_decy: unknown key; did you mean "
            "'weight_decay'?");
}

TEST(RecipeErrors, KeyInTheWrongSectionSuggestsItsFullPath) {
  const std::string msg = resolve_error(std::string(kMinimal) + "lr: 0.1\n");
  EXPECT_CONTAINS(msg, "recipes/test.yaml:5: lr: unknown key; did you mean 'optimizer.lr'?");
}

TEST(RecipeErrors, UnrelatedUnknownKeyListsTheAllowedKeys) {
  const std::string msg = resolve_error(std::string(kMinimal) + "lora:\n  momentum: 3\n");
  EXPECT_CONTAINS(msg,
                  "recipes/test.yaml:6: lora.momentum: unknown key; expected one of: "
                  "enabled, rank, alpha, dropout, rslora, targets");
}

TEST(RecipeErrors, MissingRequiredKeyIsNamed) {
  const std::string msg = resolve_error("stage: sft\noutput_dir: runs/x\ndata:\n  format: text\n");
  EXPECT_CONTAINS(msg, "recipes/test.yaml:3: data.train: missing required key");
  const std::string empty = resolve_error("stage: sft\n");
  EXPECT_CONTAINS(empty, "recipes/test.yaml: output_dir: missing required key");
  EXPECT_CONTAINS(empty, "recipes/test.yaml: data.train: missing required key");
}

TEST(RecipeErrors, RequiredPathMustNotBeEmpty) {
  const std::string msg = resolve_error("stage: sft\noutput_dir: \"\"\ndata:\n  train: a.jsonl\n");
  EXPECT_CONTAINS(msg, "recipes/test.yaml:2: output_dir: expected a non-empty path, got \"\"");
}

TEST(RecipeErrors, OutOfRangeValuesStateTheRange) {
  auto with = [](const std::string& extra) { return resolve_error(std::string(kMinimal) + extra); };
  EXPECT_CONTAINS(with("optimizer:\n  lr: 0\n"),
                  "recipes/test.yaml:6: optimizer.lr: expected a number > 0, got 0.0");
  EXPECT_CONTAINS(with("model:\n  dropout: 1.0\n"),
                  "recipes/test.yaml:6: model.dropout: expected a number in [0, 1), got 1.0");
  EXPECT_CONTAINS(with("train:\n  max_steps: 0\n"),
                  "recipes/test.yaml:6: train.max_steps: expected an integer >= 1, got 0");
  EXPECT_CONTAINS(with("schedule:\n  min_lr_ratio: 1.5\n"),
                  "schedule.min_lr_ratio: expected a number in [0, 1], got 1.5");
  EXPECT_CONTAINS(with("lora:\n  rank: -4\n"), "lora.rank: expected an integer >= 1, got -4");
}

TEST(RecipeErrors, BadEnumValueListsChoicesAndSuggests) {
  EXPECT_CONTAINS(resolve_error(std::string(kMinimal) + "schedule:\n  type: cosin\n"),
                  "recipes/test.yaml:6: schedule.type: expected one of cosine, linear, constant, "
                  "got \"cosin\"; did you mean 'cosine'?");
  EXPECT_CONTAINS(
      resolve_error(std::string(kMinimal) + "model:\n  preset: gpt3\n"),
      "model.preset: expected one of gpt2-tiny, gpt2-mini, gpt2, gpt2-medium, gpt2-large, "
      "gpt2-xl, mistral-tiny, mistral-7b, got \"gpt3\"");
}

TEST(RecipeErrors, TypesAreStrict) {
  auto with = [](const std::string& extra) { return resolve_error(std::string(kMinimal) + extra); };
  // A quoted number is a string.
  EXPECT_CONTAINS(with("optimizer:\n  lr: \"0.1\"\n"),
                  "optimizer.lr: expected a number > 0, got the string \"0.1\"");
  EXPECT_CONTAINS(with("train:\n  max_steps: 10.5\n"),
                  "train.max_steps: expected an integer >= 1, got \"10.5\"");
  EXPECT_CONTAINS(with("train:\n  resume: yes\n"),
                  "train.resume: expected true or false, got \"yes\"");
  EXPECT_CONTAINS(with("lora:\n  targets: c_attn\n"),
                  "lora.targets: expected a list of strings like [a, b], got \"c_attn\"");
  EXPECT_CONTAINS(with("lora:\n  targets: [c_attn, [x]]\n"),
                  "lora.targets: expected a list of strings like [a, b], got a list with an "
                  "element that is a list");
  EXPECT_CONTAINS(with("optimizer:\n  lr:\n"), "optimizer.lr: expected a number > 0, got nothing");
  EXPECT_CONTAINS(with("optimizer:\n  lr: .inf\n"), "optimizer.lr: expected a number > 0");
  EXPECT_CONTAINS(with("model: 3\n"),
                  "recipes/test.yaml:5: model: expected a section with keys init, path, preset");
  EXPECT_CONTAINS(with("seed: [1]\n"),
                  "recipes/test.yaml:5: seed: expected an integer >= 0, got a list");
}

TEST(RecipeErrors, DuplicateKeyIsAnError) {
  const std::string msg =
      resolve_error(std::string(kMinimal) + "train:\n  max_steps: 5\n  max_steps: 6\n");
  EXPECT_CONTAINS(msg, "recipes/test.yaml:7: train.max_steps: duplicate key (first set on line 6)");
}

TEST(RecipeErrors, InvalidYamlNamesTheLine) {
  const std::string msg = resolve_error("stage: sft\ndata:\n  train: [a,\n");
  EXPECT_CONTAINS(msg, "[recipe] recipes/test.yaml:");
  EXPECT_CONTAINS(msg, "not valid YAML");
  EXPECT_CONTAINS(
      resolve_error("- a\n- b\n"),
      "recipes/test.yaml: expected a mapping of recipe keys (key: value lines), got a list");
}

TEST(RecipeErrors, EveryProblemIsReportedAtOnce) {
  const std::string msg =
      resolve_error("stage: sft\noutput_dir: x\noptimizer:\n  lr: fast\ntrain:\n  max_step: 3\n");
  EXPECT_CONTAINS(msg, "[recipe] recipes/test.yaml:4: optimizer.lr: expected a number");
  EXPECT_CONTAINS(msg,
                  "\n[recipe] recipes/test.yaml:6: train.max_step: unknown key; did you mean "
                  "'max_steps'?");
  EXPECT_CONTAINS(msg, "\n[recipe] recipes/test.yaml: data.train: missing required key");
}

// --- overrides ---------------------------------------------------------------------------------

TEST(RecipeOverrides, ChangeValuesWithYamlTyping) {
  const SftRecipe r = sft_recipe_from_config(
      resolve_sft_recipe(kMinimal, kSource,
                         {"train.max_steps=10", "lora.targets=[c_attn,c_fc]", "optimizer.lr=1.0e-3",
                          "data.eval=data/eval.jsonl", "train.precision=bf16", "train.resume=true",
                          "output_dir=runs/other", "train.max_steps=12"}));
  EXPECT_EQ(r.train.max_steps, 12);  // the later override wins
  EXPECT_EQ(r.lora.targets, (std::vector<std::string>{"c_attn", "c_fc"}));
  EXPECT_EQ(r.optimizer.lr, 1.0e-3);
  EXPECT_EQ(r.data.eval, fs::path("data/eval.jsonl"));
  EXPECT_EQ(r.train.precision, Precision::kBf16);
  EXPECT_TRUE(r.train.resume);
  EXPECT_EQ(r.output_dir, fs::path("runs/other"));
}

TEST(RecipeOverrides, EmptyValueMeansEmptyString) {
  const SftRecipe r = sft_recipe_from_config(resolve_sft_recipe(
      std::string(kMinimal) + "  eval: data/eval.jsonl\n", kSource, {"data.eval="}));
  EXPECT_EQ(r.data.eval, fs::path(""));
}

TEST(RecipeOverrides, BadSyntaxNamesTheOverride) {
  EXPECT_EQ(resolve_error(kMinimal, {"foo"}),
            "[recipe] override 'foo': expected KEY=VALUE, e.g. train.max_steps=10");
}

TEST(RecipeOverrides, UnknownKeyNamesTheOverrideAndSuggests) {
  EXPECT_EQ(resolve_error(kMinimal, {"train.max_step=3"}),
            "[recipe] override 'train.max_step=3': train.max_step: unknown key; did you mean "
            "'train.max_steps'?");
  EXPECT_CONTAINS(resolve_error(kMinimal, {"trian.max_steps=3"}),
                  "override 'trian.max_steps=3': trian.max_steps: unknown key; did you mean "
                  "'train.max_steps'?");
  EXPECT_CONTAINS(resolve_error(kMinimal, {"zzz.max_steps=3"}),
                  "zzz.max_steps: unknown key; 'zzz' is not a section");
}

TEST(RecipeOverrides, WrongTypeNamesTheOverride) {
  EXPECT_EQ(resolve_error(kMinimal, {"train.max_steps=ten"}),
            "[recipe] override 'train.max_steps=ten': train.max_steps: expected an integer >= 1, "
            "got \"ten\"");
  EXPECT_CONTAINS(resolve_error(kMinimal, {"lora.targets=c_attn"}),
                  "override 'lora.targets=c_attn': lora.targets: expected a list of strings");
  EXPECT_CONTAINS(resolve_error(kMinimal, {"lora.targets=[c_attn,"}),
                  "override 'lora.targets=[c_attn,': lora.targets: value is not valid YAML");
  EXPECT_CONTAINS(resolve_error(kMinimal, {"model=3"}),
                  "override 'model=3': model: is a section; override one of its keys, e.g. "
                  "model.init=...");
}

TEST(RecipeOverrides, ReplaceABadValueInTheFile) {
  const SftRecipe r = sft_recipe_from_config(resolve_sft_recipe(
      std::string(kMinimal) + "optimizer:\n  lr: fast\n", kSource, {"optimizer.lr=0.5"}));
  EXPECT_EQ(r.optimizer.lr, 0.5);
  // Other mistakes in the file are still reported.
  EXPECT_CONTAINS(resolve_error(std::string(kMinimal) + "optimizer:\n  lr: fast\n  bta1: 0.8\n",
                                {"optimizer.lr=0.5"}),
                  "recipes/test.yaml:7: optimizer.bta1: unknown key; did you mean 'beta1'?");
}

TEST(RecipeOverrides, CanFixAMissingRequiredKey) {
  const SftRecipe r = sft_recipe_from_config(
      resolve_sft_recipe("stage: sft\noutput_dir: x\n", kSource, {"data.train=d.h5"}));
  EXPECT_EQ(r.data.train, fs::path("d.h5"));
}

// --- rules across keys -------------------------------------------------------------------------

TEST(RecipeRules, CrossKeyMistakesNameTheKeyToChange) {
  auto with = [](const std::string& extra, const std::vector<std::string>& overrides = {}) {
    return resolve_error(std::string(kMinimal) + extra, overrides);
  };
  EXPECT_EQ(with("model:\n  init: pretrained\n"),
            "[recipe] recipes/test.yaml: model.path: required when model.init is 'pretrained' (a "
            "HF checkpoint directory)");
  EXPECT_CONTAINS(with("model:\n  init: pretrained\n  path: m\n  n_layer: 2\n"),
                  "recipes/test.yaml:8: model.n_layer: only applies to model.init 'random'");
  EXPECT_CONTAINS(with("model:\n  n_head: 3\n  n_embd: 64\n"),
                  "recipes/test.yaml:7: model.n_embd: expected a multiple of model.n_head (3), "
                  "got 64");
  EXPECT_CONTAINS(with("", {"lora.targets=[]"}),
                  "override 'lora.targets=[]': lora.targets: expected at least one module name");
  EXPECT_CONTAINS(with("lora:\n  enabled: false\nexport:\n  merge_lora: true\n"),
                  "recipes/test.yaml:8: export.merge_lora: needs lora.enabled: true");
  EXPECT_CONTAINS(with("", {"data.train=data/train.csv"}),
                  "data.train: expected a .jsonl or .h5 file, got \"data/train.csv\"");
  EXPECT_CONTAINS(with("  eval: e.jsonl\n  eval_fraction: 0.1\n"),
                  "recipes/test.yaml:6: data.eval_fraction: must be 0 when data.eval is set");
}

// --- stage selection ---------------------------------------------------------------------------

TEST(RecipeStages, StageKeyChoosesTheSchema) {
  EXPECT_EQ(recipe_stage(kMinimal, kSource).name, "sft");
  EXPECT_EQ(
      test::error_of([] { recipe_stage("output_dir: x\n", kSource); }),
      "[recipe] recipes/test.yaml: stage: missing required key (what to run; one of sft, reward, "
      "dpo, elicit, chain, agent)");
  EXPECT_EQ(test::error_of([] { recipe_stage("seed: 1\nstage: sfx\n", kSource); }),
            "[recipe] recipes/test.yaml:2: stage: expected one of sft, reward, dpo, elicit, chain, "
            "agent, got \"sfx\"; did you mean 'sft'?");
  EXPECT_CONTAINS(
      test::error_of([] { recipe_stage(kMinimal, kSource, {"stage=ppo"}); }),
      "[recipe] override 'stage=ppo': stage: expected one of sft, reward, dpo, elicit, chain, "
      "agent, got \"ppo\"");
  EXPECT_EQ(find_stage("sft").schema, &sft_recipe_schema().spec());
}

// --- recipes that build on a base recipe (`base:`) ----------------------------------------------

// A base, a recipe on it, and one on that: each key comes from the nearest recipe that sets it;
// sections merge key by key; a list is one value; overrides win over all of them.
TEST_F(RecipeFiles, BaseRecipesChainAndTheNearestValueWins) {
  write_text(dir_ / "bases" / "common.yaml",
             "stage: sft\noutput_dir: runs/common\ndata:\n  train: data/train.jsonl\n"
             "optimizer:\n  lr: 1.0e-3\n  weight_decay: 0.5\nlora:\n  targets: [c_attn, c_fc]\n"
             "train:\n  max_steps: 7\n");
  write_text(dir_ / "bases" / "middle.yaml",
             "base: common.yaml\noptimizer:\n  lr: 2.0e-3\nlora:\n  targets: [c_proj]\n");
  write_text(dir_ / "run.yaml", "base: bases/middle.yaml\noutput_dir: runs/mine\n");
  const SftRecipe r = load_sft_recipe(dir_ / "run.yaml", {"train.max_steps=9"});
  EXPECT_EQ(r.output_dir, "runs/mine");                           // the recipe's own
  EXPECT_EQ(r.optimizer.lr, 2.0e-3);                              // middle's
  EXPECT_EQ(r.optimizer.weight_decay, 0.5);                       // common's, same section
  EXPECT_EQ(r.lora.targets, std::vector<std::string>{"c_proj"});  // a list is replaced whole
  EXPECT_EQ(r.train.max_steps, 9);                                // the override's
  EXPECT_EQ(r.data.train, "data/train.jsonl");                    // common's
  // The stage may come from a base; the resolved recipe names no base and says where each key
  // came from.
  const std::string text = read_file(dir_ / "run.yaml");
  const std::string source = (dir_ / "run.yaml").string();
  EXPECT_EQ(recipe_stage(text, source).name, "sft");
  const ResolvedConfig c = resolve_sft_recipe(text, source);
  EXPECT_EQ(c.to_yaml(false).find("base"), std::string::npos);
  EXPECT_EQ(c.where("optimizer.weight_decay"), (dir_ / "bases" / "common.yaml").string() + ":7");
  EXPECT_EQ(c.where("output_dir"), source + ":2");
  // The same recipe written out in full resolves to the same thing.
  const std::string flat = c.to_yaml(false);
  EXPECT_EQ(resolve_sft_recipe(flat, "flat.yaml").to_yaml(false), flat);
}

TEST_F(RecipeFiles, BaseRecipeErrorsNameTheFiles) {
  write_text(dir_ / "a.yaml", "base: b.yaml\nstage: sft\n");
  write_text(dir_ / "b.yaml", "base: a.yaml\n");
  const std::string a = (dir_ / "a.yaml").string();
  EXPECT_EQ(test::error_of([&] { load_sft_recipe(dir_ / "a.yaml"); }),
            "[recipe] " + (dir_ / "b.yaml").string() + ":1: base: " + a +
                " builds on itself: " + a + " -> " + (dir_ / "b.yaml").string() + " -> " + a);
  write_text(dir_ / "c.yaml", std::string(kMinimal) + "base: nowhere.yaml\n");
  EXPECT_CONTAINS(test::error_of([&] { load_sft_recipe(dir_ / "c.yaml"); }),
                  "c.yaml:5: base: file not found: " + (dir_ / "nowhere.yaml").string());
  write_text(dir_ / "d.yaml", std::string(kMinimal) + "base: [x.yaml]\n");
  EXPECT_CONTAINS(test::error_of([&] { load_sft_recipe(dir_ / "d.yaml"); }),
                  "d.yaml:5: base: expected the file name of a recipe to build on, got a list");
  // A mistake inside a base names the base's file and line.
  write_text(dir_ / "bad_base.yaml", "optimizer:\n  lr: fast\n");
  write_text(dir_ / "e.yaml", std::string(kMinimal) + "base: bad_base.yaml\n");
  EXPECT_CONTAINS(test::error_of([&] { load_sft_recipe(dir_ / "e.yaml"); }),
                  (dir_ / "bad_base.yaml").string() + ":2: optimizer.lr: expected a number > 0");
}

// --- tables of weights (kWeightTable), e.g. the per-user DPO recipe's `users` ------------------

struct WeightsRecipe {
  WeightTable users;
  double beta = 0;
  WeightTable mix;
};

const Schema<WeightsRecipe>& weights_schema() {
  static const Schema<WeightsRecipe> schema = [] {
    Schema<WeightsRecipe> s;
    s.key(
         "users", [](auto& r) -> auto& { return r.users; })
        .doc("judge weights per user")
        .default_value({});
    s.key(
         "beta", [](auto& r) -> auto& { return r.beta; })
        .doc("DPO beta")
        .default_value(0.1)
        .above(0);
    s.section("judge", "how pairs are judged");
    s.key(
         "judge.mix", [](auto& r) -> auto& { return r.mix; })
        .doc("weights of the judges")
        .default_value({{"all", {{"shorter_length", 0.5}}}})
        .at_least(0)
        .at_most(1);
    s.spec().check_complete();
    return s;
  }();
  return schema;
}

ResolvedConfig resolve_weights(const std::string& text,
                               const std::vector<std::string>& overrides = {}) {
  return resolve_config(weights_schema().spec(), text, kSource, overrides);
}

WeightsRecipe weights_recipe(const std::string& text,
                             const std::vector<std::string>& overrides = {}) {
  return weights_schema().bind(resolve_weights(text, overrides));
}

std::string weights_error(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return test::error_of([&] { resolve_weights(text, overrides); });
}

const char* kTableExpectation =
    "expected a mapping of names to mappings of names to numbers like {alice: {shorter_length: "
    "1.0}}";

TEST(RecipeWeightTable, FlowFormIsRead) {
  const WeightsRecipe r = weights_recipe(
      "users: {alice: {shorter_length: 1.0}, bob: {new_lines: 0.7, lowercase: 0.3}}\n");
  const WeightTable expected = {{"alice", {{"shorter_length", 1.0}}},
                                {"bob", {{"new_lines", 0.7}, {"lowercase", 0.3}}}};
  EXPECT_EQ(r.users, expected);
  EXPECT_EQ(r.beta, 0.1);
  EXPECT_EQ(r.mix, (WeightTable{{"all", {{"shorter_length", 0.5}}}}));  // the default
}

TEST(RecipeWeightTable, BlockFormIsRead) {
  const WeightsRecipe r = weights_recipe(
      "users:\n"
      "  alice: {shorter_length: 1.0}\n"
      "  bob:\n"
      "    new_lines: 0.7\n"
      "    lowercase: -0.3\n"
      "  \"true\":\n"   // a name that looks like a bool is still a name
      "    '1.5': 2\n"  // an integer is a number
      "    adjectives: 1e-3\n"
      "judge:\n"
      "  mix:\n"
      "    carol: {a: 0, b: 1}\n");
  const WeightTable users = {{"alice", {{"shorter_length", 1.0}}},
                             {"bob", {{"new_lines", 0.7}, {"lowercase", -0.3}}},
                             {"true", {{"1.5", 2.0}, {"adjectives", 0.001}}}};
  EXPECT_EQ(r.users, users);
  EXPECT_EQ(r.mix, (WeightTable{{"carol", {{"a", 0.0}, {"b", 1.0}}}}));
}

TEST(RecipeWeightTable, EmptyTableIsAllowed) {
  EXPECT_EQ(weights_recipe("users: {}\n").users, WeightTable{});
  EXPECT_EQ(weights_recipe("beta: 0.5\n").users, WeightTable{});  // the default
  EXPECT_EQ(weights_recipe("", {"users={}"}).users, WeightTable{});
}

TEST(RecipeWeightTable, PrintsAsOneFlowLineThatParsesBack) {
  const ResolvedConfig original = resolve_weights(
      "users: {bob: {new_lines: 0.7, lowercase: -0.3}, alice: {shorter_length: 1}}\n"
      "judge:\n"
      "  mix: {\"a b\": {\"true\": 0.1, \"1.5\": 0.3333333333333333, \"x: y\": 1.0e-8}}\n");
  const std::string printed = original.to_yaml(/*with_docs=*/false);
  EXPECT_CONTAINS(
      printed, "users: {alice: {shorter_length: 1.0}, bob: {lowercase: -0.3, new_lines: 0.7}}\n");
  EXPECT_CONTAINS(printed,
                  "  mix: {\"a b\": {\"1.5\": 0.3333333333333333, \"true\": 0.1, \"x: y\": "
                  "1.0e-8}}\n");
  const ResolvedConfig reparsed = resolve_weights(printed);
  for (const auto& key : weights_schema().spec().keys()) {
    EXPECT_TRUE(original.value(key.path) == reparsed.value(key.path)) << key.path;
  }
  EXPECT_EQ(reparsed.hash(), original.hash());
  EXPECT_EQ(weights_schema().bind(reparsed).mix,
            (WeightTable{{"a b", {{"true", 0.1}, {"1.5", 0.3333333333333333}, {"x: y", 1e-8}}}}));
  // The struct converts back to the same config; the documented output parses back too.
  const ResolvedConfig back = weights_schema().unbind(weights_schema().bind(original), "x");
  EXPECT_EQ(back.hash(), original.hash());
  EXPECT_EQ(resolve_weights(original.to_yaml(/*with_docs=*/true)).hash(), original.hash());
  // An empty table prints as {}.
  const ResolvedConfig empty = resolve_weights("");
  EXPECT_CONTAINS(empty.to_yaml(false), "users: {}\n");
  EXPECT_EQ(resolve_weights(empty.to_yaml(false)).hash(), empty.hash());
  EXPECT_NE(empty.hash(), original.hash());
}

TEST(RecipeWeightTable, OverridesReplaceTheTable) {
  const WeightsRecipe r = weights_recipe("users: {alice: {shorter_length: 1.0}}\n",
                                         {"users={carol: {lowercase: 1.0}}"});
  EXPECT_EQ(r.users, (WeightTable{{"carol", {{"lowercase", 1.0}}}}));
  // An override fixes a bad value in the file.
  EXPECT_EQ(weights_recipe("users: {alice: {x: bad}}\n", {"users={alice: {x: 0.5}}"}).users,
            (WeightTable{{"alice", {{"x", 0.5}}}}));
  EXPECT_EQ(weights_error("", {"users={carol: {lowercase: x}}"}),
            "[recipe] override 'users={carol: {lowercase: x}}': users.carol.lowercase: expected a "
            "number, got \"x\"");
  EXPECT_EQ(weights_error("", {"users=carol"}),
            "[recipe] override 'users=carol': users: " + std::string(kTableExpectation) +
                ", got \"carol\"");
  EXPECT_CONTAINS(weights_error("", {"users={carol: {x: 1}"}),
                  "override 'users={carol: {x: 1}': users: value is not valid YAML");
}

TEST(RecipeWeightTable, BadWeightNamesItsLineAndPath) {
  const std::string text =
      "beta: 0.2\n"                     // 1
      "users:\n"                        // 2
      "  alice: {shorter_length: 1}\n"  // 3
      "  bob:\n"                        // 4
      "    new_lines: 0.7\n"            // 5
      "    lowercase: lots\n";          // 6
  EXPECT_EQ(weights_error(text),
            "[recipe] recipes/test.yaml:6: users.bob.lowercase: expected a number, got \"lots\"");
  EXPECT_EQ(weights_error("users: {bob: {new_lines: \"x\"}}\n"),
            "[recipe] recipes/test.yaml:1: users.bob.new_lines: expected a number, got the string "
            "\"x\"");
  EXPECT_CONTAINS(weights_error("users: {bob: {new_lines: \"0.7\"}}\n"),
                  "users.bob.new_lines: expected a number, got the string \"0.7\"");
  EXPECT_CONTAINS(weights_error("users: {bob: {new_lines: [1]}}\n"),
                  "users.bob.new_lines: expected a number, got a list");
  EXPECT_CONTAINS(weights_error("users: {bob: {new_lines: }}\n"),
                  "users.bob.new_lines: expected a number, got nothing");
  EXPECT_CONTAINS(weights_error("users: {bob: {new_lines: .inf}}\n"),
                  "users.bob.new_lines: expected a number, got \".inf\"");
}

TEST(RecipeWeightTable, WrongShapesStateTheExpectation) {
  EXPECT_EQ(
      weights_error("beta: 1\nusers: [alice, bob]\n"),
      "[recipe] recipes/test.yaml:2: users: " + std::string(kTableExpectation) + ", got a list");
  EXPECT_CONTAINS(
      weights_error("users: alice\n"),
      "recipes/test.yaml:1: users: " + std::string(kTableExpectation) + ", got \"alice\"");
  EXPECT_CONTAINS(weights_error("users:\n"), "recipes/test.yaml:1: users: " +
                                                 std::string(kTableExpectation) + ", got nothing");
  EXPECT_EQ(weights_error("users:\n  alice: 1.0\n"),
            "[recipe] recipes/test.yaml:2: users.alice: expected a non-empty mapping of names to "
            "numbers like {shorter_length: 1.0}, got \"1.0\"");
  EXPECT_EQ(weights_error("users:\n  alice: {x: 1}\n  bob: {}\n"),
            "[recipe] recipes/test.yaml:3: users.bob: expected a non-empty mapping of names to "
            "numbers like {shorter_length: 1.0}, got an empty mapping");
  EXPECT_CONTAINS(weights_error("users: {bob: [x]}\n"),
                  "users.bob: expected a non-empty mapping of names to numbers like "
                  "{shorter_length: 1.0}, got a list");
  EXPECT_CONTAINS(weights_error("users: {bob: }\n"),
                  "users.bob: expected a non-empty mapping of names to numbers like "
                  "{shorter_length: 1.0}, got nothing");
}

TEST(RecipeWeightTable, NamesMustBeNonEmptyScalars) {
  EXPECT_EQ(weights_error("users: {\"\": {x: 1.0}}\n"),
            "[recipe] recipes/test.yaml:1: users: expected a non-empty name, got \"\"");
  EXPECT_EQ(weights_error("users:\n  bob:\n    \"\": 1.0\n"),
            "[recipe] recipes/test.yaml:3: users.bob: expected a non-empty name, got \"\"");
  EXPECT_CONTAINS(weights_error("users:\n  ? [a, b]\n  : {x: 1.0}\n"),
                  "recipes/test.yaml:2: users: expected a non-empty name, got a list");
  EXPECT_CONTAINS(weights_error("users:\n  bob:\n    ? {a: 1}\n    : 1.0\n"),
                  "recipes/test.yaml:3: users.bob: expected a non-empty name, got a mapping");
}

TEST(RecipeWeightTable, DuplicateNamesAreErrors) {
  EXPECT_EQ(weights_error("users:\n  alice: {x: 1.0}\n  bob: {x: 1.0}\n  alice: {y: 1.0}\n"),
            "[recipe] recipes/test.yaml:4: users.alice: duplicate key");
  EXPECT_EQ(weights_error("users:\n  bob:\n    x: 1.0\n    x: 2.0\n"),
            "[recipe] recipes/test.yaml:4: users.bob.x: duplicate key");
  EXPECT_CONTAINS(weights_error("", {"users={bob: {x: 1.0, x: 1.0}}"}),
                  "override 'users={bob: {x: 1.0, x: 1.0}}': users.bob.x: duplicate key");
}

TEST(RecipeWeightTable, BoundsApplyToEveryWeight) {
  EXPECT_EQ(weights_error("judge:\n  mix:\n    all: {a: 0.5, b: 1.5}\n"),
            "[recipe] recipes/test.yaml:3: judge.mix.all.b: expected a number in [0, 1], got 1.5");
  EXPECT_CONTAINS(weights_error("judge:\n  mix: {all: {a: -0.1}}\n"),
                  "recipes/test.yaml:2: judge.mix.all.a: expected a number in [0, 1], got -0.1");
  EXPECT_CONTAINS(weights_error("judge:\n  mix: {all: {a: x}}\n"),
                  "judge.mix.all.a: expected a number in [0, 1], got \"x\"");
  EXPECT_CONTAINS(weights_error("judge:\n  mix: 3\n"),
                  "recipes/test.yaml:2: judge.mix: " + std::string(kTableExpectation) +
                      ", each weight in [0, 1], got \"3\"");
  // Unbounded tables take any finite number.
  EXPECT_EQ(weights_recipe("users: {a: {x: -1.0e+20}}\n").users,
            (WeightTable{{"a", {{"x", -1e20}}}}));
}

TEST(RecipeWeightTable, SchemaDescribesAndChecksTheKind) {
  const SchemaSpec& spec = weights_schema().spec();
  EXPECT_EQ(spec.find_key("users")->kind, ValueKind::kWeightTable);
  EXPECT_EQ(spec.find_key("users")->type_description(), "table of weights");
  EXPECT_EQ(spec.find_key("judge.mix")->type_description(), "table of weights in [0, 1]");
  const std::string reference = spec.reference();
  EXPECT_CONTAINS(reference, "{all: {shorter_length: 0.5}}");
  EXPECT_CONTAINS(reference, "judge weights per user");
  EXPECT_CONTAINS(resolve_weights("").to_yaml(true), "# judge weights per user [table of weights]");
  // Defaults are checked like values.
  for (const WeightTable& bad :
       {WeightTable{{"all", {{"a", 2.0}}}}, WeightTable{{"all", {}}},
        WeightTable{{"", {{"a", 0.5}}}}, WeightTable{{"all", {{"", 0.5}}}}}) {
    Schema<WeightsRecipe> s;
    s.key(
         "users", [](auto& r) -> auto& { return r.users; })
        .doc("x")
        .default_value(bad)
        .at_least(0)
        .at_most(1);
    EXPECT_THROW(s.spec().check_complete(), std::logic_error);
  }
}

// --- tables of strings (kStringTable), e.g. the per-user DPO recipe's `reward_users` ----------

struct StringsRecipe {
  StringTable judges;
  StringTable fixed;
};

const Schema<StringsRecipe>& strings_schema() {
  static const Schema<StringsRecipe> schema = [] {
    Schema<StringsRecipe> s;
    s.key(
         "judges", [](auto& r) -> auto& { return r.judges; })
        .doc("reward models per user")
        .default_value({});
    s.section("more", "a section");
    s.key(
         "more.fixed", [](auto& r) -> auto& { return r.fixed; })
        .doc("a table with a default")
        .default_value({{"zed", {{"model", "runs/z"}}}});
    s.spec().check_complete();
    return s;
  }();
  return schema;
}

ResolvedConfig resolve_strings(const std::string& text,
                               const std::vector<std::string>& overrides = {}) {
  return resolve_config(strings_schema().spec(), text, kSource, overrides);
}

std::string strings_error(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return test::error_of([&] { resolve_strings(text, overrides); });
}

const char* kStringTableExpectation =
    "expected a mapping of names to mappings of names to strings like {carol: {model: "
    "runs/rm/export}}";

TEST(RecipeStringTable, FlowAndBlockFormsAreRead) {
  const StringsRecipe r =
      strings_schema().bind(resolve_strings("judges:\n"
                                            "  carol: {model: runs/rm_bt/export}\n"
                                            "  dave:\n"
                                            "    model: runs/rm_vpl/export\n"
                                            "    context: \"ctx/dave context.jsonl\"\n"
                                            "    n: 3\n"  // any scalar is a string
                                            "    empty: \"\"\n"));
  const StringTable expected = {{"carol", {{"model", "runs/rm_bt/export"}}},
                                {"dave",
                                 {{"model", "runs/rm_vpl/export"},
                                  {"context", "ctx/dave context.jsonl"},
                                  {"n", "3"},
                                  {"empty", ""}}}};
  EXPECT_EQ(r.judges, expected);
  EXPECT_EQ(r.fixed, (StringTable{{"zed", {{"model", "runs/z"}}}}));  // the default
  EXPECT_EQ(strings_schema().bind(resolve_strings("", {"judges={a: {model: m}}"})).judges,
            (StringTable{{"a", {{"model", "m"}}}}));
  EXPECT_EQ(strings_schema().bind(resolve_strings("judges: {}\n")).judges, StringTable{});
}

TEST(RecipeStringTable, PrintsAsOneFlowLineThatParsesBack) {
  const ResolvedConfig original = resolve_strings(
      "judges: {dave: {model: \"a b/c\", context: \"true\", x: \"\"}, carol: {model: "
      "runs/rm-1/export}}\n");
  const std::string printed = original.to_yaml(/*with_docs=*/false);
  EXPECT_CONTAINS(printed,
                  "judges: {carol: {model: runs/rm-1/export}, dave: {context: \"true\", model: "
                  "\"a b/c\", x: \"\"}}\n");
  const ResolvedConfig reparsed = resolve_strings(printed);
  for (const auto& key : strings_schema().spec().keys())
    EXPECT_TRUE(original.value(key.path) == reparsed.value(key.path)) << key.path;
  EXPECT_EQ(reparsed.hash(), original.hash());
  EXPECT_EQ(resolve_strings(original.to_yaml(/*with_docs=*/true)).hash(), original.hash());
  const ResolvedConfig back = strings_schema().unbind(strings_schema().bind(original), "x");
  EXPECT_EQ(back.hash(), original.hash());
  EXPECT_CONTAINS(resolve_strings("").to_yaml(false), "judges: {}\n");
}

TEST(RecipeStringTable, WrongShapesNameTheirLineAndPath) {
  EXPECT_EQ(strings_error("judges: [a]\n"),
            "[recipe] recipes/test.yaml:1: judges: " + std::string(kStringTableExpectation) +
                ", got a list");
  EXPECT_EQ(strings_error("judges:\n  carol: runs/x\n"),
            "[recipe] recipes/test.yaml:2: judges.carol: expected a non-empty mapping of names to "
            "strings like {model: runs/rm/export}, got \"runs/x\"");
  EXPECT_CONTAINS(strings_error("judges: {carol: {}}\n"),
                  "judges.carol: expected a non-empty mapping of names to strings like {model: "
                  "runs/rm/export}, got an empty mapping");
  EXPECT_EQ(strings_error("judges:\n  carol:\n    model: [a, b]\n"),
            "[recipe] recipes/test.yaml:3: judges.carol.model: expected a string, got a list");
  EXPECT_CONTAINS(strings_error("judges: {carol: {model: }}\n"),
                  "judges.carol.model: expected a string, got nothing");
  EXPECT_CONTAINS(strings_error("judges: {carol: {model: {a: b}}}\n"),
                  "judges.carol.model: expected a string, got a mapping");
  EXPECT_EQ(strings_error("judges:\n  carol:\n    model: a\n    model: b\n"),
            "[recipe] recipes/test.yaml:4: judges.carol.model: duplicate key");
  EXPECT_EQ(strings_error("judges:\n  \"\": {model: a}\n"),
            "[recipe] recipes/test.yaml:2: judges: expected a non-empty name, got \"\"");
  EXPECT_EQ(strings_error("", {"judges={carol: {model: [x]}}"}),
            "[recipe] override 'judges={carol: {model: [x]}}': judges.carol.model: expected a "
            "string, got a list");
}

TEST(RecipeStringTable, SchemaDescribesAndChecksTheKind) {
  const SchemaSpec& spec = strings_schema().spec();
  EXPECT_EQ(spec.find_key("judges")->kind, ValueKind::kStringTable);
  EXPECT_EQ(spec.find_key("judges")->type_description(), "table of strings");
  EXPECT_CONTAINS(spec.reference(), "{zed: {model: runs/z}}");
  EXPECT_CONTAINS(resolve_strings("").to_yaml(true), "# reward models per user [table of strings]");
  for (const StringTable& bad : {StringTable{{"a", {}}}, StringTable{{"", {{"model", "m"}}}},
                                 StringTable{{"a", {{"", "m"}}}}}) {
    Schema<StringsRecipe> s;
    s.key(
         "judges", [](auto& r) -> auto& { return r.judges; })
        .doc("x")
        .default_value(bad);
    EXPECT_THROW(s.spec().check_complete(), std::logic_error);
  }
}

// --- resolved output, hash, round trip ---------------------------------------------------------

TEST(RecipeResolved, PrintedRecipeParsesBackToTheSameRecipe) {
  // Values that are easy to print wrongly: floats that are not short in binary, strings that
  // look like other YAML types, paths with spaces.
  const ResolvedConfig original = resolve_sft_recipe(
      kMinimal, kSource,
      {"optimizer.lr=0.1", "optimizer.eps=1e-12", "schedule.min_lr_ratio=0.3333333333333333",
       "output_dir=runs/with space/\"quoted\"", "tokenizer=true", "data.train=007.jsonl",
       "lora.targets=[c_attn, 'a,b', '']", "model.preset=gpt2-xl"});
  const std::string printed = original.to_yaml(/*with_docs=*/true);
  const ResolvedConfig reparsed = resolve_sft_recipe(printed, "printed.yaml");
  for (const auto& key : sft_recipe_schema().spec().keys()) {
    EXPECT_TRUE(original.value(key.path) == reparsed.value(key.path)) << key.path;
  }
  const SftRecipe r = sft_recipe_from_config(reparsed);
  EXPECT_EQ(r.optimizer.lr, 0.1);
  EXPECT_EQ(r.optimizer.eps, 1e-12);
  EXPECT_EQ(r.schedule.min_lr_ratio, 0.3333333333333333);
  EXPECT_EQ(r.output_dir, fs::path("runs/with space/\"quoted\""));
  EXPECT_EQ(r.tokenizer, fs::path("true"));
  EXPECT_EQ(r.data.train, fs::path("007.jsonl"));
  EXPECT_EQ(r.lora.targets, (std::vector<std::string>{"c_attn", "a,b", ""}));
  EXPECT_EQ(reparsed.hash(), original.hash());
}

TEST(RecipeResolved, PrintedRecipeShowsEveryKeyWithItsDoc) {
  const std::string printed = resolve_sft_recipe(kMinimal, kSource).to_yaml(true);
  EXPECT_CONTAINS(printed, "optimizer:\n");
  EXPECT_CONTAINS(printed, "  lr: 0.0003");
  EXPECT_CONTAINS(printed, "# peak learning rate, reached after warmup [float > 0]");
  EXPECT_CONTAINS(printed, "  eps: 1.0e-8");
  EXPECT_CONTAINS(printed, "  targets: [c_attn, c_proj, c_fc]");
  EXPECT_CONTAINS(printed, "  path: \"\"");
  EXPECT_CONTAINS(printed, "export:\n  enabled: true");
}

TEST(RecipeResolved, StructRoundTripKeepsEveryValue) {
  const ResolvedConfig config = resolve_sft_recipe(kMinimal, kSource, {"train.precision=bf16"});
  const SftRecipe r = sft_recipe_from_config(config);
  const ResolvedConfig back = sft_recipe_to_config(r);
  for (const auto& key : sft_recipe_schema().spec().keys()) {
    EXPECT_TRUE(config.value(key.path) == back.value(key.path)) << key.path;
  }
  EXPECT_EQ(recipe_hash(r), config.hash());
  EXPECT_EQ(resolved_recipe_yaml(r), config.to_yaml(true));
}

// FNV-1a 64 written out independently of the implementation.
std::string fnv1a64_hex(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s)
    h = (h ^ c) * 0x100000001b3ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

TEST(RecipeResolved, HashIsStableAndChangesWithAnyValue) {
  ASSERT_EQ(fnv1a64_hex("a"), "af63dc4c8601ec8c");  // published FNV-1a 64 test vector
  const ResolvedConfig a = resolve_sft_recipe(kMinimal, kSource);
  EXPECT_EQ(a.hash(), fnv1a64_hex(a.to_yaml(false)));
  // Same recipe, written differently: other key order, comments, explicit defaults, flow style.
  const ResolvedConfig b = resolve_sft_recipe(
      "# a comment\ndata: {train: data/train.jsonl, format: text}\noutput_dir: runs/test\n"
      "optimizer:\n  lr: 3.0e-4\nstage: sft\n",
      "other.yaml");
  EXPECT_EQ(a.hash(), b.hash());
  const ResolvedConfig c = resolve_sft_recipe(kMinimal, kSource, {"optimizer.lr=3.1e-4"});
  const ResolvedConfig d = resolve_sft_recipe(kMinimal, kSource, {"lora.targets=[c_attn]"});
  EXPECT_NE(a.hash(), c.hash());
  EXPECT_NE(a.hash(), d.hash());
  EXPECT_EQ(a.hash().size(), 16u);
}

// --- files: inputs, recipe.yaml, nothing written on failure ------------------------------------

TEST_F(RecipeFiles, InputCheckNamesTheKeyAndThePath) {
  const fs::path train = dir_ / "train.jsonl", tok = dir_ / "tok";
  auto recipe_with = [&](std::vector<std::string> overrides) {
    overrides.push_back("data.train=" + train.string());
    overrides.push_back("tokenizer=" + tok.string());
    return sft_recipe_from_config(resolve_sft_recipe(kMinimal, kSource, overrides));
  };
  const SftRecipe r = recipe_with({});
  EXPECT_CONTAINS(test::error_of([&] { check_sft_inputs(r); }),
                  "[recipe] data.train: file not found: " + train.string());
  write_text(train, "{\"text\": \"hi\"}\n");
  EXPECT_CONTAINS(test::error_of([&] { check_sft_inputs(r); }),
                  "[recipe] tokenizer: directory not found: " + tok.string());
  write_text(tok / "vocab.json", "{}");
  EXPECT_EQ(
      test::error_of([&] { check_sft_inputs(r); }),
      "[recipe] tokenizer: " + tok.string() + " has no vocab.json + merges.txt or tokenizer.json");
  write_text(tok / "merges.txt", "#version: 0.2\n");
  EXPECT_EQ(test::error_or_empty([&] { check_sft_inputs(r); }), "");
  const SftRecipe with_eval = recipe_with({"data.eval=" + (dir_ / "eval.jsonl").string()});
  EXPECT_CONTAINS(test::error_of([&] { check_sft_inputs(with_eval); }),
                  "data.eval: file not found: " + (dir_ / "eval.jsonl").string());
  const SftRecipe pretrained =
      recipe_with({"model.init=pretrained", "model.path=" + (dir_ / "model").string()});
  fs::create_directories(dir_ / "model");
  EXPECT_CONTAINS(test::error_of([&] { check_sft_inputs(pretrained); }),
                  "model.path: " + (dir_ / "model").string() + " has no config.json");
  write_text(dir_ / "out", "a file");
  const SftRecipe file_out = recipe_with({"output_dir=" + (dir_ / "out").string()});
  EXPECT_CONTAINS(test::error_of([&] { check_sft_inputs(file_out); }),
                  "output_dir: " + (dir_ / "out").string() + " exists and is not a directory");
}

TEST_F(RecipeFiles, WrittenRecipeRepeatsTheRun) {
  const SftRecipe r = sft_recipe_from_config(
      resolve_sft_recipe(kMinimal, kSource, {"train.max_steps=3", "lora.rank=4"}));
  const fs::path run_dir = dir_ / "runs" / "a";
  write_resolved_recipe(r, run_dir);
  EXPECT_EQ(std::vector<fs::path>(fs::directory_iterator(run_dir), fs::directory_iterator()),
            std::vector<fs::path>{run_dir / "recipe.yaml"});  // no temporaries left behind
  const SftRecipe again = load_sft_recipe(run_dir / "recipe.yaml");
  EXPECT_EQ(again.train.max_steps, 3);
  EXPECT_EQ(again.lora.rank, 4);
  EXPECT_EQ(recipe_hash(again), recipe_hash(r));
  EXPECT_CONTAINS(read_file(run_dir / "recipe.yaml"),
                  "tailor run " + (run_dir / "recipe.yaml").string());
}

int run_cli(const std::vector<std::string>& args) {
  std::vector<std::string> full{"tailor run"};
  full.insert(full.end(), args.begin(), args.end());
  return cli::run_command(full);
}

TEST_F(RecipeFiles, RunWritesNothingWhenTheRecipeIsWrong) {
  const fs::path out = dir_ / "out";
  const fs::path recipe = dir_ / "r.yaml";
  write_text(recipe, "stage: sft\noutput_dir: " + out.string() +
                         "\ndata:\n  train: t.jsonl\noptimizer:\n  lr: fast\n");
  EXPECT_CONTAINS(test::error_of([&] { run_cli({recipe.string()}); }),
                  recipe.string() + ":6: optimizer.lr: expected a number > 0, got \"fast\"");
  EXPECT_CONTAINS(test::error_of([&] {
                    run_cli({recipe.string(), "optimizer.lr=1e-3", "foo"});
                  }),
                  "override 'foo'");
  // Valid recipe, missing input file: the last validation step, still before any write.
  EXPECT_CONTAINS(test::error_of([&] {
                    run_cli({recipe.string(), "optimizer.lr=1e-3"});
                  }),
                  "data.train: file not found: t.jsonl");
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(RecipeFiles, PrintConfigPrintsTheResolvedRecipeAndWritesNothing) {
  const fs::path out = dir_ / "out";
  const fs::path recipe = dir_ / "r.yaml";
  write_text(recipe, "stage: sft\noutput_dir: " + out.string() + "\ndata:\n  train: t.jsonl\n");
  ::testing::internal::CaptureStdout();
  int rc = -1;
  const std::string error = test::error_or_empty([&] {
    rc = run_cli({recipe.string(), "train.max_steps=7", "--print-config"});
  });
  const std::string printed = ::testing::internal::GetCapturedStdout();
  ASSERT_EQ(error, "");
  EXPECT_EQ(rc, 0);
  EXPECT_FALSE(fs::exists(out));
  const SftRecipe r = sft_recipe_from_config(resolve_sft_recipe(printed, "stdout"));
  EXPECT_EQ(r.train.max_steps, 7);
  EXPECT_EQ(recipe_hash(r),
            resolve_sft_recipe(read_file(recipe), "x", {"train.max_steps=7"}).hash());
}

}  // namespace
}  // namespace tailor
