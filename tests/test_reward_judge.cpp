// Reward-model judges for the per-user DPO stage (judges/reward_judge.h, recipe key
// reward_users), checked against references computed without the judge:
// - a Bradley–Terry export's judge gives `tailor score`'s rewards and the in-memory model's
//   unpadded forward (long texts: its forward on the last n_positions tokens);
// - a hand-built reward model (reward = a known function of the last token) gives the known
//   ranking, pairs and ties;
// - a VPL judge with a user's context gives the reward stage's evaluation path (context
//   embeddings by the frozen initial backbone, vpl_scores with z = mean), for a LoRA export (its
//   base is the context encoder) and a fully trained one (context_encoder named);
// - the oracle-mixture judge picks exactly the pairs the former Copeland code picked;
// - for_each_judge loads one reward export at a time and gives each user its own export's judge;
// - recipe errors name the key;
// - a dpo run with an oracle user, a Bradley–Terry user and a VPL user on generated pairs: the
//   reward users' pairs follow their rewards and their win rates recount from the samples.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "dist/communicator.h"
#include "dpo_test_support.h"
#include "judges/judge.h"
#include "judges/judge_set.h"
#include "judges/oracles.h"
#include "judges/preference_sources.h"
#include "judges/reward_judge.h"
#include "judges/win_rate.h"
#include "models/core/lora.h"
#include "models/gpt2/gpt2.h"
#include "models/heads/reward_model.h"
#include "models/heads/vpl.h"
#include "models/io/pretrained.h"
#include "models/io/reward_export.h"
#include "models/io/vpl_export.h"
#include "models/tokenizer/prompt_format.h"
#include "models/tokenizer/tokenizer.h"
#include "stages/dpo/dpo_stage.h"
#include "stages/reward/reward_step.h"
#include "test_support.h"
#include "train/features/context_embeddings.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;
using judges::RewardJudge;
using judges::RewardJudgeSpec;
using testing::read_jsonl;
using testing::run_dpo_in_process;
using Items = std::vector<std::pair<std::string, std::string>>;

const fs::path kGpt2Tokenizer = fs::path(TAILOR_SOURCE_DIR) / "assets/tokenizers/gpt2";

const Tokenizer& gpt2_tokenizer() {
  static const Tokenizer tokenizer = Tokenizer::from_dir(kGpt2Tokenizer);
  return tokenizer;
}

// A GPT-2 of width 16 on the real vocabulary (the exports carry the GPT-2 tokenizer).
CausalLM tiny_judge_gpt2(uint64_t seed) {
  GPT2Config config;
  config.n_positions = 64;
  config.n_embd = 16;
  config.n_layer = 1;
  config.n_head = 2;
  config.resid_pdrop = config.embd_pdrop = config.attn_pdrop = 0.0;
  torch::manual_seed(seed);
  return GPT2LMHead(config).ptr();
}

RewardModel tiny_bt(uint64_t seed) {
  RewardModel model(tiny_judge_gpt2(seed), 1);
  model->init_head(0.5);  // rewards that differ clearly between texts
  model->eval();
  return model;
}

std::unique_ptr<RewardJudge> judge_of(const RewardJudgeSpec& spec, int64_t batch_size = 16) {
  judges::RewardJudgeOptions options;
  options.batch_size = batch_size;
  auto judges = judges::make_reward_judges({spec}, {"reward_users.test"}, options);
  return std::move(judges.front());
}

// prompt ids ++ completion ids, tokenized here as the reward stage's data does.
std::vector<int64_t> reward_ids(const std::string& prompt, const std::string& completion) {
  std::vector<int64_t> ids;
  for (int32_t id : gpt2_tokenizer().encode_hf(prompt, true))
    ids.push_back(id);
  for (int32_t id : gpt2_tokenizer().encode(completion))
    ids.push_back(id);
  return ids;
}

// The reward of one unpadded sequence under the in-memory model.
double unpadded_reward(RewardModel& model, std::vector<int64_t> ids, int64_t max_length = 64) {
  if (static_cast<int64_t>(ids.size()) > max_length) ids.erase(ids.begin(), ids.end() - max_length);
  torch::NoGradGuard no_grad;
  return model->forward(at::tensor(ids, at::kLong).unsqueeze(0))[0][0].item<double>();
}

// `tailor score --model DIR` on {"prompt", "response"} lines: each line's reward.
std::vector<double> tailor_score_rewards(const fs::path& model, const Items& items,
                                         const fs::path& scratch) {
  std::string lines;
  for (const auto& [prompt, completion] : items)
    lines += nlohmann::json({{"prompt", prompt}, {"response", completion}}).dump() + "\n";
  write_file_atomic(scratch / "score_in.jsonl", lines);
  EXPECT_EQ(cli::score_command({"tailor score", "--model", model.string(), "--input",
                                (scratch / "score_in.jsonl").string(), "--output",
                                (scratch / "score_out.jsonl").string()}),
            0);
  std::vector<double> out;
  for (const auto& line : read_jsonl(scratch / "score_out.jsonl"))
    out.push_back(line["reward"][0].get<double>());
  return out;
}

TEST(RewardJudge, BtScoresEqualTailorScoreAndTheModelsUnpaddedForward) {
  const fs::path dir = test::fresh_process_dir("reward_judge_bt");
  RewardModel model = tiny_bt(11);
  save_reward_model(dir / "rm", model, /*merged=*/false, kGpt2Tokenizer);

  std::string long_answer;
  for (int i = 0; i < 40; ++i)
    long_answer += " word" + std::to_string(i);  // ~80 tokens: longer than n_positions 64
  const Items items = {{"What is a cat?", " A pet."},
                       {"What is a cat?", " A small animal that purrs and sleeps a lot."},
                       {"Name a colour.", " Red"},
                       {"What is a cat?", " A pet."},  // a repeat: scored once, same reward
                       {"Name a colour.", ""},         // the prompt alone
                       {"Why?", " Because\nit is."},
                       {"Why?", long_answer}};
  const auto judge = judge_of({dir / "rm", {}, {}}, /*batch_size=*/3);
  const std::vector<double> got = judge->rewards(items);
  ASSERT_EQ(got.size(), items.size());
  EXPECT_EQ(got[0], got[3]);

  // `tailor score` refuses sequences past n_positions; the judge keeps their last tokens.
  const Items short_items(items.begin(), items.end() - 1);
  const std::vector<double> scored = tailor_score_rewards(dir / "rm", short_items, dir);
  ASSERT_EQ(scored.size(), short_items.size());
  double worst = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const double want = unpadded_reward(model, reward_ids(items[i].first, items[i].second));
    EXPECT_NEAR(got[i], want, 1e-5) << i;
    if (i < scored.size()) {
      EXPECT_NEAR(got[i], scored[i], 1e-5) << i;
    }
    worst = std::max(worst, std::abs(got[i] - want));
  }
  std::cerr << "bt judge vs unpadded forward: worst difference " << worst << "\n";
  EXPECT_GT(reward_ids(items.back().first, items.back().second).size(), 64u);

  // Verdicts follow the rewards, in both orders.
  const std::vector<int> verdicts =
      judge->compare({{items[0].first, items[0].second, items[1].second},
                      {items[0].first, items[1].second, items[0].second},
                      {items[0].first, items[0].second, items[0].second}});
  const int want = got[0] > got[1] ? 1 : -1;
  EXPECT_EQ(verdicts, (std::vector<int>{want, -want, 0}));
  EXPECT_CONTAINS(judge->description(), "(bt)");
  EXPECT_TRUE(judge->latent().empty());
  fs::remove_all(dir);
}

// reward(text) = w . LN(wte[last token]): attention and MLP outputs zeroed, no position
// embeddings. " good" -> 16 / sqrt(1 + 1e-5) = 15.99992, " great" (2x the same row)
// 32 / sqrt(4 + 1e-5) = 15.99998 (higher, but a tie within the tolerance), " bad" -15.99992,
// every other token 0.
TEST(RewardJudge, HandBuiltRewardsGiveTheKnownRankingPairsAndTies) {
  const fs::path dir = test::fresh_process_dir("reward_judge_hand");
  RewardModel model = tiny_bt(3);
  const auto token = [](const std::string& text) {
    const auto ids = gpt2_tokenizer().encode(text);
    EXPECT_EQ(ids.size(), 1u) << text;
    return static_cast<int64_t>(ids.at(0));
  };
  const at::Tensor x =
      at::tensor(std::vector<float>{1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1});
  {
    torch::NoGradGuard no_grad;
    for (auto& item : model->named_parameters()) {
      const std::string& name = item.key();
      if (name.find("c_proj") != std::string::npos || name == "transformer.wpe.weight" ||
          name == "transformer.wte.weight")
        item.value().zero_();
      if (name == "transformer.ln_f.weight") item.value().fill_(1.0);
      if (name == "transformer.ln_f.bias") item.value().zero_();
    }
    at::Tensor wte = model->named_parameters()["transformer.wte.weight"];
    wte[token(" good")].copy_(x);
    wte[token(" great")].copy_(2 * x);
    wte[token(" bad")].copy_(-x);
    model->score->weight.copy_(x.unsqueeze(0));
  }
  save_reward_model(dir / "rm", model, /*merged=*/false, kGpt2Tokenizer);
  const auto judge = judge_of({dir / "rm", {}, {}});

  const double good = 16 / std::sqrt(1 + 1e-5), great = 16 * 2 / std::sqrt(4 + 1e-5);
  const std::vector<double> r = judge->rewards({{"Q:", " it is fine"},
                                                {"Q:", " it is good"},
                                                {"Q:", " it is bad"},
                                                {"Q:", " so great"},
                                                {"Q:", " meh"}});
  EXPECT_NEAR(r[0], 0, 1e-6);
  EXPECT_NEAR(r[1], good, 1e-4);
  EXPECT_NEAR(r[2], -good, 1e-4);
  EXPECT_NEAR(r[3], great, 1e-4);
  EXPECT_NEAR(r[4], 0, 1e-6);
  EXPECT_LT(r[1], r[3]);  // not equal, but within the tolerance
  EXPECT_EQ(judges::reward_prefers(r[1], r[3]), 0);

  // Ranking: by reward, equal rewards in sample order.
  const auto rankings =
      judge->rank({{"Q:", {" it is fine", " it is good", " it is bad", " so great", " meh"}}});
  EXPECT_EQ(rankings[0].order, (std::vector<size_t>{3, 1, 0, 4, 2}));
  EXPECT_EQ(rankings[0].prefers[1][2], 1);
  EXPECT_EQ(rankings[0].prefers[2][1], -1);
  EXPECT_EQ(rankings[0].prefers[0][4], 0);
  EXPECT_EQ(rankings[0].prefers[1][3], 0);

  // Pairs: best vs worst, second vs second worst; a tie gives no pair; empty samples take no part.
  const auto pairs =
      pick_pairs("carol", *judge, {"Q:", "Q:", "Q:"},
                 {{" it is fine", " it is good", "", " it is bad", " so great", " meh"},
                  {" good", " so great", " fine"},
                  {" good", " so great", ""}},
                 /*max_pairs=*/2);
  ASSERT_EQ(pairs.size(), 3u);
  ASSERT_EQ(pairs[0].size(), 2u);
  EXPECT_EQ(pairs[0][0].chosen, " so great");
  EXPECT_EQ(pairs[0][0].rejected, " it is bad");
  EXPECT_EQ(pairs[0][1].chosen, " it is good");
  EXPECT_EQ(pairs[0][1].rejected, " meh");
  EXPECT_EQ(pairs[0][0].user, "carol");
  ASSERT_EQ(pairs[1].size(), 1u);
  EXPECT_EQ(pairs[1][0].chosen, " so great");
  EXPECT_EQ(pairs[1][0].rejected, " fine");
  EXPECT_TRUE(pairs[2].empty());  // " good" vs " so great": a tie
  EXPECT_EQ(
      pick_pairs("carol", *judge, {"Q:"}, {{" good", " bad", " great", " fine"}}, 1)[0].size(), 1u);

  // Win rates through the judge: adapter " good" beats base " bad", ties " great".
  const auto rates = win_rates(
      {{{"Q:", " good", " bad"}, {"Q:", " good", " great"}, {"Q:", " bad", " good"}}}, *judge);
  EXPECT_EQ(rates[0].wins, 1);
  EXPECT_EQ(rates[0].ties, 1);
  EXPECT_EQ(rates[0].losses, 1);

  // The tolerance: 1e-5 of the larger magnitude, at least 1e-5.
  EXPECT_EQ(judges::reward_prefers(1.0, 1.0 + 0.9e-5), 0);
  EXPECT_EQ(judges::reward_prefers(1.0, 1.0 + 1.1e-5), -1);
  EXPECT_EQ(judges::reward_prefers(1000.0, 1000.009), 0);
  EXPECT_EQ(judges::reward_prefers(1000.0, 999.98), 1);
  EXPECT_EQ(judges::reward_prefers(0.0, -2e-5), 1);
  fs::remove_all(dir);
}

// --- VPL ------------------------------------------------------------------------------------

struct Answer {
  std::string prompt, chosen, rejected;
};

void write_context(const fs::path& file, const std::vector<Answer>& answers) {
  std::string text;
  for (const auto& a : answers)
    text += nlohmann::json({{"prompt", a.prompt}, {"chosen", a.chosen}, {"rejected", a.rejected}})
                .dump() +
            "\n";
  write_file_atomic(file, text);
}

std::vector<int32_t> joined(const std::string& prompt, const std::string& response) {
  std::vector<int32_t> ids =
      encode_sft_field(gpt2_tokenizer(), PromptTemplate::kPlain, "prompt", prompt);
  const auto r = encode_sft_field(gpt2_tokenizer(), PromptTemplate::kPlain, "response", response);
  ids.insert(ids.end(), r.begin(), r.end());
  return ids;
}

// The reward stage's evaluation path for one user: the frozen initial backbone embeds the user's
// answers (context_embeddings), each example gets the context [B, C, 2, E] as the stage's
// contexts() lays it out, the trained backbone embeds the responses (right-padded batch,
// last_token_features) and vpl_scores decodes with z = mean (eps undefined).
std::vector<double> stage_vpl_rewards(CausalLMImpl& initial, CausalLMImpl& trained, VplHeads& heads,
                                      const std::vector<Answer>& answers, const Items& items,
                                      const fs::path& scratch) {
  std::vector<std::vector<int32_t>> sequences;
  std::vector<int64_t> needed;
  for (const auto& a : answers) {
    needed.push_back(static_cast<int64_t>(sequences.size()));
    sequences.push_back(joined(a.prompt, a.chosen));
    needed.push_back(static_cast<int64_t>(sequences.size()));
    sequences.push_back(joined(a.prompt, a.rejected));
  }
  std::ostringstream log;
  fs::remove(scratch / "context_embeddings.h5");
  const at::Tensor embeddings = context_embeddings(initial, sequences, needed,
                                                   scratch / "context_embeddings.h5", "test", log);
  const int64_t B = static_cast<int64_t>(items.size()), C = static_cast<int64_t>(answers.size());
  const at::Tensor context = embeddings.index_select(0, at::tensor(needed, at::kLong))
                                 .view({1, C, 2, -1})
                                 .expand({B, C, 2, -1});
  std::vector<std::vector<int32_t>> rows;
  int64_t T = 1;
  for (const auto& [prompt, completion] : items) {
    rows.push_back(joined(prompt, completion));
    T = std::max<int64_t>(T, static_cast<int64_t>(rows.back().size()));
  }
  at::Tensor ids = at::zeros({B, T}, at::kLong), mask = at::zeros({B, T}, at::kLong);
  for (int64_t i = 0; i < B; ++i)
    for (size_t t = 0; t < rows[static_cast<size_t>(i)].size(); ++t) {
      ids[i][static_cast<int64_t>(t)] = rows[static_cast<size_t>(i)][t];
      mask[i][static_cast<int64_t>(t)] = 1;
    }
  torch::NoGradGuard no_grad;
  trained.eval();
  const at::Tensor e = last_token_features(trained.hidden_states(ids, mask), mask);
  const RewardScores s = vpl_scores(heads, at::cat({e, e}, 0), context, at::Tensor());
  const at::Tensor r = s.chosen.to(at::kDouble).contiguous();
  return std::vector<double>(r.data_ptr<double>(), r.data_ptr<double>() + B);
}

VplHeads tiny_heads(uint64_t seed) {
  torch::manual_seed(seed);
  VplConfig config;
  config.embed_dim = 16;
  config.hidden_dim = 12;
  config.latent_dim = 4;
  VplHeads heads(config);
  heads->eval();
  return heads;
}

const std::vector<Answer> kDaveAnswers = {
    {"What is a cat?", " A pet.", " A small animal that purrs."},
    {"Name a colour.", " red", " RED"},
    {"Why is the sky blue?", " Light scatters.", " Because it is."}};
const std::vector<Answer> kErinAnswers = {
    {"What is a cat?", " A small animal that purrs.", " A pet."},
    {"Name a colour.", " RED", " red"}};
const Items kVplItems = {{"What is rain?", " Water."},
                         {"What is rain?", " Water that falls from clouds in drops."},
                         {"Who wrote Hamlet?", " shakespeare"},
                         {"Who wrote Hamlet?", " SHAKESPEARE!"}};

// A wiring test: the judge embeds the context with the initial backbone and decodes with z = mean,
// as the reward stage's evaluation does (both through the production heads; their maths is
// test_vpl.cpp's float64 reference).
TEST(RewardJudge, VplWithAContextIsWiredLikeTheRewardStagesEvaluationPath) {
  const fs::path dir = test::fresh_process_dir("reward_judge_vpl");
  // A LoRA run: the base (= the initial backbone, the context encoder) plus a trained adapter.
  CausalLM initial = tiny_judge_gpt2(21), trained = tiny_judge_gpt2(21);
  const LoraConfig lora{4, 8.0, 0.0, false, {"c_attn", "c_fc"}};
  apply_lora(*trained, lora);
  {
    torch::NoGradGuard no_grad;
    torch::manual_seed(22);
    for (auto& item : trained->named_parameters())
      if (item.key().find("lora_B") != std::string::npos) item.value().normal_(0, 0.5);
  }
  VplHeads heads = tiny_heads(23);
  save_vpl_export(dir / "vpl", *trained, heads, lora, /*merged=*/false, kGpt2Tokenizer);
  write_context(dir / "dave.jsonl", kDaveAnswers);
  write_context(dir / "erin.jsonl", kErinAnswers);

  judges::RewardJudgeOptions options;
  options.batch_size = 3;
  auto both = judges::make_reward_judges(
      {{dir / "vpl", dir / "dave.jsonl", {}}, {dir / "vpl", dir / "erin.jsonl", {}}},
      {"reward_users.dave", "reward_users.erin"}, options);
  for (const auto& [judge, answers] :
       {std::pair<RewardJudge*, const std::vector<Answer>*>{both[0].get(), &kDaveAnswers},
        {both[1].get(), &kErinAnswers}}) {
    const std::vector<double> got = judge->rewards(kVplItems);
    const std::vector<double> want =
        stage_vpl_rewards(*initial, *trained, heads, *answers, kVplItems, dir);
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i], want[i], 1e-5) << judge->description() << " item " << i;
    EXPECT_EQ(judge->latent().size(), 4u);
    EXPECT_CONTAINS(judge->description(), "(vpl)");
  }
  // The two contexts give two users.
  const auto dave = both[0]->rewards(kVplItems), erin = both[1]->rewards(kVplItems);
  EXPECT_GT(std::abs(dave[0] - erin[0]), 1e-4);
  EXPECT_NE(both[0]->latent(), both[1]->latent());

  // A backbone trained in full: the export does not hold the context encoder, so the recipe
  // names the initial model.
  CausalLM full = tiny_judge_gpt2(31), full_initial = tiny_judge_gpt2(31);
  {
    torch::NoGradGuard no_grad;
    torch::manual_seed(32);
    for (auto& item : full->named_parameters())
      item.value().add_(at::randn_like(item.value()) * 0.05);
  }
  save_vpl_export(dir / "vpl_full", *full, heads, std::nullopt, /*merged=*/false, kGpt2Tokenizer);
  save_pretrained(dir / "initial", *full_initial);
  EXPECT_CONTAINS(test::error_of([&] {
                    judge_of({dir / "vpl_full", dir / "dave.jsonl", {}});
                  }),
                  "reward_users.test.context_encoder: missing");
  const auto judge = judge_of({dir / "vpl_full", dir / "dave.jsonl", dir / "initial"});
  const std::vector<double> got = judge->rewards(kVplItems);
  const std::vector<double> want =
      stage_vpl_rewards(*full_initial, *full, heads, kDaveAnswers, kVplItems, dir);
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 1e-5) << "full fine-tune, item " << i;
  fs::remove_all(dir);
}

// --- oracle mixtures: unchanged behaviour ---------------------------------------------------

// The pair picking the stage did before judges existed (preference_sources.cpp at 2f7f330),
// kept here as the reference.
std::vector<TextPair> former_pick_pairs(const std::string& user,
                                        const judges::OracleWeights& weights,
                                        const std::string& prompt,
                                        const std::vector<std::string>& all_samples,
                                        int64_t max_pairs) {
  std::vector<std::string> samples;
  for (const auto& s : all_samples)
    if (!s.empty()) samples.push_back(s);
  const size_t K = samples.size();
  std::vector<int64_t> score(K, 0);
  for (size_t i = 0; i < K; ++i)
    for (size_t j = i + 1; j < K; ++j) {
      const int vote = judges::mixture_prefers(weights, prompt, samples[i], samples[j]);
      score[i] += vote;
      score[j] -= vote;
    }
  std::vector<size_t> order(K);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return score[a] > score[b]; });
  std::vector<TextPair> pairs;
  for (size_t k = 0; k < K / 2 && static_cast<int64_t>(pairs.size()) < max_pairs; ++k) {
    const std::string& best = samples[order[k]];
    const std::string& worst = samples[order[K - 1 - k]];
    if (judges::mixture_prefers(weights, prompt, best, worst) > 0)
      pairs.push_back({user, prompt, best, worst});
  }
  return pairs;
}

TEST(OracleJudge, PicksThePairsAndVerdictsOfTheMixtureVotes) {
  const std::vector<std::string> prompts = {"Tell me about cats.", "A story:", "Why?"};
  const std::vector<std::vector<std::string>> samples = {
      {"Cats are small.\nThey purr.", "CATS!!!", "", "cats sleep a lot and eat fish", "Cats."},
      {"Once upon a time, a very old king lived happily.", "the end", "It was a dark night.",
       "Once upon a time", "", "a b c d e f"},
      {"because", "Because.", "BECAUSE", "because it is, obviously, the reason."}};
  const std::vector<judges::OracleWeights> mixtures = {
      {{"shorter_length", 1.0}},
      {{"new_lines", 0.7}, {"lowercase", 0.3}},
      {{"readability", 1.0}, {"adjectives", -2.0}},
      {{"no_punctuation", 1.0}, {"prompt_similarity", 1.0}}};
  for (const auto& weights : mixtures) {
    const auto judge = judges::make_oracle_judge(weights);
    for (int64_t max_pairs : {1, 2, 3}) {
      const auto got = pick_pairs("u", *judge, prompts, samples, max_pairs);
      for (size_t i = 0; i < prompts.size(); ++i) {
        const auto want = former_pick_pairs("u", weights, prompts[i], samples[i], max_pairs);
        ASSERT_EQ(got[i].size(), want.size()) << judge->description() << " prompt " << i;
        for (size_t k = 0; k < want.size(); ++k) {
          EXPECT_EQ(got[i][k].chosen, want[k].chosen);
          EXPECT_EQ(got[i][k].rejected, want[k].rejected);
        }
      }
    }
  }
  // Verdicts worked out by hand: shorter_length counts code points ("because" 7 < "Because." 8,
  // "BECAUSE" 7 ties); new_lines (0.7) outvotes lowercase (0.3) when they disagree, and both count
  // when they agree; equal texts tie.
  struct Verdict {
    judges::OracleWeights weights;
    std::string a, b;
    int want;
  };
  const std::vector<Verdict> verdicts = {
      {{{"shorter_length", 1.0}}, "Cats.", "cats sleep a lot and eat fish", 1},
      {{{"shorter_length", 1.0}}, "cats sleep a lot and eat fish", "Cats.", -1},
      {{{"shorter_length", 1.0}}, "because", "Because.", 1},
      {{{"shorter_length", 1.0}}, "because", "BECAUSE", 0},
      {{{"new_lines", 0.7}, {"lowercase", 0.3}}, "Cats are small.\nThey purr.", "CATS!!!", 1},
      {{{"new_lines", 0.7}, {"lowercase", 0.3}},
       "cats sleep a lot",
       "Cats are small.\nThey purr.",
       -1},
      {{{"lowercase", 1.0}}, "cats sleep a lot", "Cats are small.\nThey purr.", 1},
      {{{"new_lines", 0.7}, {"lowercase", 0.3}}, "the end", "the end", 0}};
  for (const auto& v : verdicts) {
    const auto judge = judges::make_oracle_judge(v.weights);
    EXPECT_EQ(judge->compare({{"Tell me about cats.", v.a, v.b}}), std::vector<int>{v.want})
        << judge->description() << ": \"" << v.a << "\" vs \"" << v.b << "\"";
  }
  EXPECT_CONTAINS(test::error_of([] {
                    judges::make_oracle_judge({{"shortest", 1.0}});
                  }),
                  "shortest");
}

// --- the recipe -----------------------------------------------------------------------------

// for_each_judge holds one reward export at a time: users on the same export share one load and
// come one after the other; each user gets its own export's rewards (equal to a judge of that
// export loaded alone); nothing stays loaded after.
TEST(JudgeSet, VisitsEveryUserWithOneRewardModelLoadedAtATime) {
  const fs::path dir = test::fresh_process_dir("reward_judge_judge_set");
  RewardModel first = tiny_bt(31), second = tiny_bt(32);
  save_reward_model(dir / "rm1", first, /*merged=*/false, kGpt2Tokenizer);
  save_reward_model(dir / "rm2", second, /*merged=*/false, kGpt2Tokenizer);
  const judges::OracleUsers oracles = {{"olga", {{"shorter_length", 1.0}}}};
  const judges::RewardUsers rewards = {{"ann", {{"model", (dir / "rm1").string()}}},
                                       {"bob", {{"model", (dir / "rm2").string()}}},
                                       {"cid", {{"model", (dir / "rm1").string()}}}};
  const Items items = {{"What is a cat?", " A pet."}, {"Name a colour.", " Red"}};
  std::map<std::string, std::vector<double>> expected;
  expected["ann"] = expected["cid"] = judge_of({dir / "rm1", "", ""})->rewards(items);
  expected["bob"] = judge_of({dir / "rm2", "", ""})->rewards(items);
  ASSERT_NE(expected["ann"], expected["bob"]);
  ASSERT_EQ(judges::live_reward_models(), 0);

  std::vector<std::string> visited;
  int64_t most_loaded = 0;
  judges::for_each_judge(
      {"ann", "bob", "olga", "cid"}, oracles, rewards, {},
      [&](const std::string& user, judges::Judge& judge) {
        visited.push_back(user);
        most_loaded = std::max(most_loaded, judges::live_reward_models());
        if (user == "olga") return;
        EXPECT_EQ(dynamic_cast<RewardJudge&>(judge).rewards(items), expected.at(user)) << user;
      });
  EXPECT_EQ(visited, (std::vector<std::string>{"olga", "ann", "cid", "bob"}));
  EXPECT_EQ(most_loaded, 1);
  EXPECT_EQ(judges::live_reward_models(), 0);
  EXPECT_NE(test::error_of([&] {
              judges::for_each_judge({"zed"}, oracles, rewards, {},
                                     [](const std::string&, judges::Judge&) {});
            }).find("user \"zed\" has no judge"),
            std::string::npos);
}

TEST(RewardUsersRecipe, ErrorsNameTheKey) {
  const fs::path dir = test::fresh_process_dir("reward_judge_recipe");
  write_file_atomic(dir / "prompts.jsonl", "{\"prompt\": \"Hi\"}\n");
  RewardModel bt = tiny_bt(4);
  save_reward_model(dir / "bt", bt, false, kGpt2Tokenizer);
  save_pretrained(dir / "lm", *bt->backbone);
  CausalLM vpl_backbone = tiny_judge_gpt2(5);
  VplHeads heads = tiny_heads(6);
  save_vpl_export(dir / "vpl", *vpl_backbone, heads, std::nullopt, false, kGpt2Tokenizer);
  write_context(dir / "ctx.jsonl", kDaveAnswers);
  const std::string d = dir.string();
  const auto recipe = [&](const std::string& reward_users,
                          const std::string& users = "{alice: {shorter_length: 1.0}}") {
    return testing::dpo_test_recipe(
        dir / "prompts.jsonl", dir / "run",
        {"data.source=generated", "users=" + users, "reward_users=" + reward_users});
  };
  const auto recipe_error = [&](const std::string& reward_users,
                                const std::string& users = "{alice: {shorter_length: 1.0}}") {
    return test::error_or_empty([&] { check_dpo_inputs(recipe(reward_users, users)); });
  };
  // Validation of the table itself (at resolve time, with where the value came from).
  EXPECT_CONTAINS(recipe_error("{dave: {model: " + d + "/bt, contxt: x}}"),
                  "reward_users.dave.contxt: unknown field; did you mean 'context'?");
  EXPECT_CONTAINS(recipe_error("{dave: {model: " + d + "/bt, contxt: x}}"),
                  "override 'reward_users=");
  EXPECT_CONTAINS(recipe_error("{dave: {context: x}}"), "reward_users.dave.model: missing");
  EXPECT_CONTAINS(recipe_error("{dave: {model: \"\"}}"),
                  "reward_users.dave.model: expected a non-empty path");
  EXPECT_CONTAINS(recipe_error("{alice: {model: " + d + "/bt}}"), "reward_users");
  EXPECT_CONTAINS(recipe_error("{alice: {model: " + d + "/bt}}"), "'alice' is also in users");
  EXPECT_CONTAINS(recipe_error("[x]"), "reward_users: expected a mapping of names to mappings");
  // Inputs on disk (tailor run checks them before any work).
  EXPECT_CONTAINS(recipe_error("{carol: {model: " + d + "/nothing}}"),
                  "reward_users.carol.model: directory not found: " + d + "/nothing");
  EXPECT_CONTAINS(recipe_error("{carol: {model: " + d + "/lm}}"),
                  "reward_users.carol.model: " + d + "/lm is not a tailor reward export");
  EXPECT_CONTAINS(recipe_error("{carol: {model: " + d + "/bt, context: " + d + "/ctx.jsonl}}"),
                  "reward_users.carol.context: " + d + "/bt is a Bradley-Terry reward model");
  EXPECT_CONTAINS(recipe_error("{dave: {model: " + d + "/vpl}}"),
                  "reward_users.dave.context: missing: " + d + "/vpl is a VPL export");
  EXPECT_CONTAINS(recipe_error("{dave: {model: " + d + "/vpl, context: " + d + "/no.jsonl}}"),
                  "reward_users.dave.context: file not found: " + d + "/no.jsonl");
  EXPECT_CONTAINS(recipe_error("{dave: {model: " + d + "/vpl, context: " + d + "/ctx.jsonl}}"),
                  "reward_users.dave.context_encoder: missing");
  EXPECT_CONTAINS(recipe_error("{dave: {model: " + d + "/vpl, context: " + d +
                               "/ctx.jsonl, context_encoder: " + d + "/nothing}}"),
                  "reward_users.dave.context_encoder: " + d + "/nothing is not a model directory");
  // Valid: a BT user, a VPL user with its encoder, and reward users alone for generated pairs.
  EXPECT_EQ(recipe_error("{carol: {model: " + d + "/bt}, dave: {model: " + d +
                         "/vpl, context: " + d + "/ctx.jsonl, context_encoder: " + d + "/lm}}"),
            "");
  EXPECT_EQ(recipe_error("{carol: {model: " + d + "/bt}}", "{}"), "");
  EXPECT_CONTAINS(recipe_error("{}", "{}"),
                  "users: data.source generated and pool need at least one user");
  const DpoRecipe r = recipe("{carol: {model: " + d + "/bt}}");
  EXPECT_EQ(r.reward_users, (StringTable{{"carol", {{"model", d + "/bt"}}}}));
  fs::remove_all(dir);
}

// --- the dpo stage with reward-model users --------------------------------------------------

// One oracle user (brief), one Bradley–Terry user (carol) and one VPL user (dave) on the base's
// own samples.
TEST(DpoStageRewardJudges, GeneratedPairsAndWinRatesFollowTheRewardModels) {
  const fs::path dir = test::fresh_process_dir("reward_judge_dpo");
  {
    std::ofstream prompts(dir / "prompts.jsonl");
    for (const char* p : {"The cat", "A story:", "Today I", "Water is", "My friend", "In the city"})
      prompts << nlohmann::json({{"prompt", p}}).dump() << "\n";
  }
  RewardModel bt = tiny_bt(41);
  save_reward_model(dir / "rm_bt", bt, /*merged=*/false, kGpt2Tokenizer);
  CausalLM initial = tiny_judge_gpt2(42), trained = tiny_judge_gpt2(42);
  const LoraConfig lora{4, 8.0, 0.0, false, {"c_attn"}};
  apply_lora(*trained, lora);
  {
    torch::NoGradGuard no_grad;
    torch::manual_seed(43);
    for (auto& item : trained->named_parameters())
      if (item.key().find("lora_B") != std::string::npos) item.value().normal_(0, 0.5);
  }
  VplHeads heads = tiny_heads(44);
  save_vpl_export(dir / "rm_vpl", *trained, heads, lora, /*merged=*/false, kGpt2Tokenizer);
  write_context(dir / "dave.jsonl", kDaveAnswers);

  const DpoRecipe recipe = testing::dpo_test_recipe(
      dir / "prompts.jsonl", dir / "run",
      {"data.source=generated", "data.eval_fraction=0.34", "users={brief: {shorter_length: 1.0}}",
       "reward_users={carol: {model: " + (dir / "rm_bt").string() + "}, dave: {model: " +
           (dir / "rm_vpl").string() + ", context: " + (dir / "dave.jsonl").string() + "}}",
       "generate.completions=4", "generate.max_new_tokens=10", "eval.completions=3",
       "eval.max_new_tokens=10", "eval.prompts=0", "train.max_steps=2"});
  check_dpo_inputs(recipe);
  run_dpo_in_process(recipe);

  // Independent rewards: carol's by the in-memory model, unpadded; dave's by the reward stage's
  // evaluation path.
  const auto carol_reward = [&](const std::string& prompt, const std::string& completion) {
    return unpadded_reward(bt, reward_ids(prompt, completion));
  };
  const auto dave_rewards = [&](const Items& items) {
    return stage_vpl_rewards(*initial, *trained, heads, kDaveAnswers, items, dir);
  };

  const auto pairs = read_jsonl(dir / "run" / "pairs.jsonl");
  std::map<std::string, int> count;
  Items dave_items;
  for (const auto& p : pairs) {
    const std::string user = p["user"];
    ++count[user];
    if (user == "carol") {
      const double c = carol_reward(p["prompt"], p["chosen"]);
      const double r = carol_reward(p["prompt"], p["rejected"]);
      EXPECT_GT(c - r, 1e-5 * std::max({1.0, std::abs(c), std::abs(r)})) << p.dump();
    }
    if (user == "dave") {
      dave_items.emplace_back(p["prompt"], p["chosen"]);
      dave_items.emplace_back(p["prompt"], p["rejected"]);
    }
  }
  EXPECT_GT(count["brief"], 0);
  EXPECT_GT(count["carol"], 0);
  EXPECT_GT(count["dave"], 0);
  const std::vector<double> d = dave_rewards(dave_items);
  for (size_t i = 0; i < d.size(); i += 2)
    EXPECT_GT(d[i] - d[i + 1], 1e-5 * std::max({1.0, std::abs(d[i]), std::abs(d[i + 1])}))
        << dave_items[i].second << " vs " << dave_items[i + 1].second;

  // Win rates and the cross-user matrix, counted again from eval_samples.jsonl with the
  // independent rewards (ties within the judge's tolerance count half).
  const auto summary = nlohmann::json::parse(read_file(dir / "run" / "summary.json"));
  const auto samples = read_jsonl(dir / "run" / "eval_samples.jsonl");
  ASSERT_EQ(samples.size(), 2u * 3u);
  const std::vector<std::string> users = {"brief", "carol", "dave"};
  EXPECT_EQ(summary["users"], nlohmann::json(users));
  EXPECT_EQ(summary["cross_user"]["adapters"], nlohmann::json(users));
  EXPECT_EQ(summary["cross_user"]["judges"], nlohmann::json(users));
  for (size_t j = 1; j < users.size(); ++j) {
    const std::string& judge = users[j];
    for (size_t a = 0; a < users.size(); ++a) {
      Items items;
      for (const auto& s : samples) {
        items.emplace_back(s["prompt"], s["users"][users[a]]);
        items.emplace_back(s["prompt"], s["base"]);
      }
      std::vector<double> r;
      if (judge == "carol") {
        for (const auto& [prompt, completion] : items)
          r.push_back(carol_reward(prompt, completion));
      } else {
        r = dave_rewards(items);
      }
      double wins = 0, ties = 0, losses = 0;
      for (size_t i = 0; i < r.size(); i += 2) {
        // An answer cut at max_new_tokens never wins (a random base's always are: all tie).
        const auto& line = samples[i / 2];
        const bool adapter_bad = line.contains("invalid") && line["invalid"].contains(users[a]);
        const bool base_bad = line.contains("base_invalid");
        if (adapter_bad || base_bad) {
          (adapter_bad && base_bad ? ties : adapter_bad ? losses : wins) += 1;
          continue;
        }
        const int v = judges::reward_prefers(r[i], r[i + 1]);
        (v > 0 ? wins : (v < 0 ? losses : ties)) += 1;
      }
      const double rate = (wins + ties / 2) / (wins + ties + losses);
      EXPECT_DOUBLE_EQ(summary["cross_user"]["win_rate"][a][j].get<double>(), rate)
          << users[a] << " judged by " << judge;
      if (a == j) {
        const auto& w = summary["win_rate"][judge];
        EXPECT_EQ(w["wins"].get<double>(), wins) << judge;
        EXPECT_EQ(w["ties"].get<double>(), ties) << judge;
        EXPECT_EQ(w["losses"].get<double>(), losses) << judge;
      }
    }
  }
  EXPECT_TRUE(summary["win_rate"].contains("brief"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tailor
