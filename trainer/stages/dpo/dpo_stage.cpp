// The per-user DPO stage, top to bottom: setup() builds the frozen base, the preference pairs
// (read, or sampled from the base and judged by the simulated users) and one adapter per user in
// a bank; resume() restores a checkpoint; train() runs optimizer steps in which every user takes
// train.pairs_per_user pairs, all users' rows mixed in the same passes over the base; finish()
// evaluates (held-out margins, win rates against the base, the cross-user matrix) and exports one
// PEFT adapter per user.
//
// Data parallel: every rank draws the same pairs from the per-user samplers and takes its share
// of each user's; a pair weighs 1 / pairs_per_user in the loss wherever it runs, so the summed
// gradients are one process's on the same global step. dist.zero_stage 0: every rank keeps all
// adapters and their AdamW state (replicated): the gradients are summed over the ranks and every
// rank takes the same step. 1 and 2: dist::ZeroEngine takes over the adapters (the bank
// parameters; the frozen base stays a plain replicated model), each rank keeping the AdamW state
// of its 1/N chunk of them; gradients are reduce-scattered (2: during backward), each rank updates
// its chunk and the adapters are all-gathered. Per-user clipping sums each user's squares over the
// owned gradient chunks and all-reduces the [users] vector. Checkpoints are then sharded.
#include "trainer/stages/dpo/dpo_stage.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include <torch/torch.h>

#include "common/atomic_file.h"
#include "common/device.h"
#include "common/error.h"
#include "common/fnv1a.h"
#include "common/process_memory.h"
#include "common/seeded_random.h"
#include "data/preferences/user_pairs.h"
#include "data/sampling/epoch_sampler.h"
#include "dist/collective_watchdog.h"
#include "dist/runtime.h"
#include "dist/sharded_checkpoint.h"
#include "dist/zero.h"
#include "models/core/adapter_bank.h"
#include "models/core/lora.h"
#include "models/io/pretrained.h"
#include "models/tokenizer/tokenizer.h"
#include "trainer/judges/judge.h"
#include "trainer/judges/judge_set.h"
#include "trainer/optim/adamw.h"
#include "trainer/optim/lr_schedule.h"
#include "trainer/run/checkpoint.h"
#include "trainer/run/fault_injection.h"
#include "trainer/run/metrics.h"
#include "trainer/run/model_checkpoint.h"
#include "trainer/run/model_setup.h"
#include "trainer/run/ranks.h"
#include "trainer/run/rng_state.h"
#include "trainer/stages/dpo/dpo_step.h"
#include "trainer/stages/dpo/preference_sources.h"
#include "trainer/stages/dpo/win_rate.h"
#include "trainer/stages/prompt_format.h"

namespace tailor {
namespace fs = std::filesystem;
namespace {

// The per-user statistics of a step, in TRL's names.
constexpr int kStats = 7;
const std::array<const char*, kStats> kStatNames = {
    "loss",         "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
    "logps/chosen", "logps/rejected"};

std::array<double, kStats> stat_values(const DpoUserStats& s) {
  return {s.loss,   s.rewards_chosen, s.rewards_rejected, s.accuracy,
          s.margin, s.logps_chosen,   s.logps_rejected};
}

// A user's random streams (adapter init, pair order, held-out split) come from a seed and the
// user's name, so a user trains the same whichever other users share the run: one run of N users
// equals N runs of one.
uint64_t user_seed(uint64_t seed, const std::string& user, uint64_t purpose) {
  return splitmix64(splitmix64(seed ^ purpose) ^ std::stoull(fnv1a64_hex(user), nullptr, 16));
}
constexpr uint64_t kInitStream = 1, kSamplerStream = 2, kSplitStream = 3;

std::string seconds_text(double seconds) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(1) << seconds;
  return out.str();
}

// Held-out splits stay fixed across training seeds (generate.seed picks them).
uint64_t split_seed(const DpoRecipe& r) {
  return static_cast<uint64_t>(r.generate.seed) ^ 0x5eedULL;
}

int64_t held_out_count(double fraction, int64_t n) {
  if (fraction <= 0 || n < 2) return 0;
  return std::clamp<int64_t>(std::llround(fraction * static_cast<double>(n)), 1, n - 1);
}

// Sampled answers, prompt-major (generate.completions per prompt), and whether each stopped at
// generate.max_new_tokens instead of EOS.
struct Samples {
  std::vector<std::string> texts;
  std::vector<bool> truncated;
};

class DpoStage {
 public:
  DpoStage(const DpoRecipe& recipe, dist::Communicator& comm)
      : r_(recipe), comm_(comm), rank0_(comm.rank() == 0) {}

  void setup();
  void resume();
  void train();
  void finish();

 private:
  bool has_judge(const std::string& user) const;
  void for_each_judge(const std::vector<std::string>& users,
                      const std::function<void(const std::string&, judges::Judge&)>& use);
  std::vector<int32_t> encode_field(const std::string& field, const std::string& text) const;
  void prepare_generated_pairs();
  GenerationConfig sampling_config(int64_t round) const;
  Samples sample_answers(const std::vector<std::string>& prompts, const GenerationConfig& config,
                         const std::string& model_name);
  std::vector<TextPair> pick_all_pairs(
      const std::vector<std::string>& prompts,
      const std::function<const Samples&(const std::string& user)>& samples_of);
  void use_pairs(const fs::path& file);
  int64_t round_start(int64_t round) const;
  int64_t round_at(int64_t step) const;
  fs::path round_pairs_file(int64_t round) const;
  void start_round(int64_t round, bool resuming);
  void split_pairs();
  void precompute_reference();
  at::Tensor reference_of(const std::vector<int64_t>& pairs) const;
  void reset_samplers();
  std::vector<int64_t> next_step_pairs();
  void reduce_gradients();
  nlohmann::json evaluate_margins(bool final);
  nlohmann::json evaluate_win_rates();
  void save_checkpoint();
  void export_adapters() const;
  std::vector<at::Tensor> bank_parameters() const;
  void setup_optimizer();
  bool stores_base() const { return r_.model.init == ModelInit::kRandom; }
  std::ostream& log() { return rank0_ ? std::cerr : null_; }

  const DpoRecipe& r_;
  dist::Communicator& comm_;
  const bool rank0_;
  std::ostream null_{nullptr};
  fs::path run_dir_;
  std::optional<Tokenizer> tokenizer_;
  CausalLM model_;
  c10::ScalarType dtype_ = at::kFloat;
  LoraConfig lora_;
  std::unique_ptr<AdapterBank> bank_;
  std::vector<std::string> users_;  // adapter order (the bank's)
  std::optional<data::UserPairs> pairs_;
  std::vector<std::vector<int64_t>> train_of_, eval_of_;  // per user: indices into pairs_
  std::vector<std::string> eval_prompts_;                 // held-out prompts for the win rates
  std::vector<std::string> train_prompts_;                // data.source generated: the others
  int64_t round_ = 0;  // generate.rounds: the round whose pairs train now (0-based)
  std::vector<data::EpochSampler> samplers_;  // per user, over train_of_[u]
  // dpo.precompute_reference: the reference log-probs {chosen, rejected} of every training pair
  // (indexed like pairs_), computed once in setup(); empty when off.
  std::vector<std::array<float, 2>> reference_;
  data::CollateOptions collate_;
  DpoStepConfig step_config_;
  std::optional<AdamW> optimizer_;            // dist.zero_stage 0
  std::unique_ptr<dist::ZeroEngine> engine_;  // dist.zero_stage 1, 2
  dist::ModelStateBytes state_bytes_;         // the adapters' model state on this rank
  int64_t trainable_params_ = 0;              // every user's adapter
  std::optional<LrSchedule> schedule_;
  std::optional<MetricsWriter> metrics_;
  int64_t step_ = 0;
  int64_t last_checkpoint_step_ = -1;
  double start_time_ = steady_clock_seconds();
};

void DpoStage::setup() {
  run_dir_ = r_.output_dir;
  check_ranks_agree(comm_, dpo_recipe_hash(r_));
  if (r_.train.pairs_per_user % comm_.world_size() != 0)
    throw Error("recipe", "train.pairs_per_user: " + std::to_string(r_.train.pairs_per_user) +
                              " pairs per user do not split over " +
                              std::to_string(comm_.world_size()) +
                              " ranks; use a multiple of the number of ranks");
  if (rank0_) fs::create_directories(run_dir_);
  comm_.barrier();
  torch::manual_seed(static_cast<uint64_t>(r_.seed));
  tokenizer_ = Tokenizer::from_dir(r_.tokenizer);

  // The frozen base, held once: the reference policy is this model with the adapters off.
  dtype_ = r_.train.precision == Precision::kBf16 ? at::kBFloat16 : at::kFloat;
  model_ = build_model(r_.model, model_config_for(r_.model), dtype_);
  if (tokenizer_->vocab_size() > model_->vocab_size())
    throw Error("dpo", "tokenizer " + r_.tokenizer.string() + " has " +
                           std::to_string(tokenizer_->vocab_size()) +
                           " tokens but the model only " + std::to_string(model_->vocab_size()));
  collate_.max_length = std::min(r_.data.max_length, model_->max_positions());
  collate_.eos_id = tokenizer_->eos_id();
  collate_.append_eos = true;  // as SFT: the EOS closing a response is part of it
  collate_.pad_to_max_length = r_.data.pad_to_max_length;

  // The pairs, and from them the users.
  if (r_.data.source == "generated") {
    // Every simulated user, in name order (the two tables share no name).
    std::set<std::string> names;
    for (const auto& [user, weights] : r_.users)
      names.insert(user);
    for (const auto& [user, fields] : r_.reward_users)
      names.insert(user);
    users_.assign(names.begin(), names.end());
    prepare_generated_pairs();
    use_pairs(run_dir_ / "pairs.jsonl");
    split_pairs();
  } else {
    use_pairs(r_.data.path);
    users_ = pairs_->users();
    split_pairs();
  }

  // One adapter per user; its lora_A drawn from the seed, its lora_B zero (the policy starts as
  // the base: loss ln 2, rewards 0).
  lora_ = LoraConfig{r_.lora.rank, r_.lora.alpha, r_.lora.dropout, r_.lora.rslora, r_.lora.targets};
  bank_ = std::make_unique<AdapterBank>(*model_, lora_, users_);
  for (const auto& user : users_)
    bank_->init_user(user, user_seed(static_cast<uint64_t>(r_.seed), user, kInitStream));
  int64_t adapter_params = 0, base_params = 0;
  for (const auto& item : model_->named_parameters())
    (item.value().requires_grad() ? adapter_params : base_params) += item.value().numel();
  trainable_params_ = adapter_params;
  setup_optimizer();
  reset_samplers();
  step_config_.loss =
      DpoLossConfig{dpo_loss_type_from_name(r_.dpo.type), r_.dpo.beta, r_.dpo.label_smoothing};
  step_config_.loss.validate();
  step_config_.sft_weight = r_.dpo.sft_weight;

  schedule_.emplace(schedule_config(r_.schedule, r_.optimizer, r_.train.max_steps));
  if (rank0_) metrics_.emplace(run_dir_ / "metrics.jsonl");
  if (r_.dpo.precompute_reference) precompute_reference();

  log() << "[dpo] base: " << model_->model_type() << ", " << model_->num_layers() << " layers, "
        << base_params << " frozen parameters ("
        << (dtype_ == at::kBFloat16 ? "bfloat16" : "float32") << "), held once\n"
        << "[dpo] " << users_.size() << " users, one LoRA adapter each (r=" << lora_.rank << " on "
        << bank_->module_paths().size() << " modules, " << adapter_params / users_.size()
        << " parameters per user); " << r_.train.pairs_per_user << " pairs per user per step"
        << (comm_.world_size() > 1
                ? " over " + std::to_string(comm_.world_size()) + " ranks (" + comm_.backend() + ")"
                : "")
        << "\n";
  for (size_t u = 0; u < users_.size(); ++u)
    log() << "[dpo]   " << users_[u] << ": " << train_of_[u].size() << " train pairs, "
          << eval_of_[u].size() << " held out\n";
  log() << "[dpo] adapters' model state per rank: params " << state_bytes_.params << " B, grads "
        << state_bytes_.grads << " B, optimizer " << state_bytes_.optimizer << " B ("
        << (engine_ ? "ZeRO stage " + std::to_string(engine_->stage()) + ", sharded over " +
                          std::to_string(comm_.world_size()) + " ranks"
                    : std::string("replicated on every rank"))
        << ")\n";
}

// The optimizer over the trainable parameters (the adapters): plain AdamW on every rank, or the
// ZeRO engine (dist.zero_stage 1, 2), which takes over their storage.
void DpoStage::setup_optimizer() {
  const AdamWConfig adam{r_.optimizer.beta1, r_.optimizer.beta2, r_.optimizer.eps,
                         r_.optimizer.weight_decay};
  // zero_stage is not part of the recipe hash (it does not change the result): check it here.
  const auto stages = comm_.all_gather_strings(std::to_string(r_.dist.zero_stage));
  for (size_t i = 1; i < stages.size(); ++i)
    if (stages[i] != stages[0])
      throw Error("dist", "rank " + std::to_string(i) + " has dist.zero_stage " + stages[i] +
                              ", rank 0 " + stages[0] + "; every rank must run the same recipe");
  if (r_.dist.zero_stage == 2)
    for (const auto& path : bank_->module_paths())
      if (path == "lm_head" ||
          (path.size() > 8 && path.compare(path.size() - 8, 8, ".lm_head") == 0))
        throw Error(
            "recipe",
            "dist.zero_stage: 2 reduces each adapter's gradient once per backward, but with "
            "lm_head among lora.targets the output layer's adapters get theirs in several "
            "passes (one per chunk of positions, a number that differs between ranks); use "
            "dist.zero_stage 1");
  if (r_.dist.zero_stage > 0) {
    std::vector<dist::ZeroParam> params;
    for (const auto& item : model_->named_parameters())
      if (item.value().requires_grad())
        params.push_back({item.key(), item.value(), decays_by_default(item.value())});
    dist::ZeroConfig config;
    config.stage = static_cast<int>(r_.dist.zero_stage);
    config.adam = adam;
    engine_ = std::make_unique<dist::ZeroEngine>(comm_, std::move(params),
                                                 std::vector<std::vector<std::string>>{}, config);
    state_bytes_ = engine_->state_bytes();
    return;
  }
  optimizer_.emplace(adam);
  for (const auto& item : model_->named_parameters()) {
    if (!item.value().requires_grad()) continue;
    optimizer_->add_param(item.key(), item.value(), decays_by_default(item.value()));
    // Replicated: weights, gradients, AdamW moments (float32) and, for low-precision weights,
    // a float32 master copy, all of every adapter.
    const at::Tensor& p = item.value();
    const int64_t n = p.numel(), size = static_cast<int64_t>(p.element_size());
    state_bytes_.params += n * size;
    state_bytes_.grads += n * size;
    state_bytes_.optimizer += n * (8 + (size < 4 ? 4 : 0));
  }
}

bool DpoStage::has_judge(const std::string& user) const {
  return r_.users.count(user) > 0 || r_.reward_users.count(user) > 0;
}

// Visits the judge of each of `users` (each in `users` or `reward_users`): a reward model is as
// large as a base, so one export at a time is loaded beside the base and dropped after its users.
// Reward judges split their scoring over the ranks and gather it: every rank gets one process's
// verdicts.
void DpoStage::for_each_judge(const std::vector<std::string>& users,
                              const std::function<void(const std::string&, judges::Judge&)>& use) {
  judges::RewardJudgeOptions options;
  options.comm = &comm_;
  judges::for_each_judge(users, r_.users, r_.reward_users, options,
                         [&](const std::string& user, judges::Judge& judge) {
                           log() << "[dpo]   " << user << " judged by " << judge.description()
                                 << "\n";
                           use(user, judge);
                         });
}

std::vector<int32_t> DpoStage::encode_field(const std::string& field,
                                            const std::string& text) const {
  return encode_sft_field(*tokenizer_, r_.data.prompt_template, field, text);
}

// data.source generated: the base samples generate.completions answers for every prompt, every
// user picks pairs among them; written to output_dir/pairs.jsonl (reused when resuming).
void DpoStage::prepare_generated_pairs() {
  const fs::path file = run_dir_ / "pairs.jsonl";
  const auto prompts = read_prompts_jsonl(r_.data.path);
  // The held-out prompts (fixed by generate.seed); their pairs are the held-out pairs.
  data::EpochSampler split(static_cast<int64_t>(prompts.size()), split_seed(r_));
  const auto order = split.permutation(0);
  const int64_t n_eval =
      held_out_count(r_.data.eval_fraction, static_cast<int64_t>(prompts.size()));
  std::vector<bool> held_out(prompts.size(), false);
  for (int64_t k = 0; k < n_eval; ++k)
    held_out[static_cast<size_t>(order[static_cast<size_t>(k)])] = true;
  for (size_t i = 0; i < prompts.size(); ++i)
    (held_out[i] ? eval_prompts_ : train_prompts_).push_back(prompts[i]);

  if (r_.train.resume && fs::exists(file) && latest_checkpoint(run_dir_)) {
    log() << "[dpo] resume: reusing " << file.string() << "\n";
    return;
  }
  log() << "[dpo] sampling " << r_.generate.completions << " answers to each of " << prompts.size()
        << " prompts from the base (" << r_.generate.max_new_tokens << " new tokens at most)\n";
  const Samples base = sample_answers(prompts, sampling_config(0), "the base");
  // Every user judges the same samples of the base.
  const std::vector<TextPair> pairs =
      pick_all_pairs(prompts, [&](const std::string&) -> const Samples& { return base; });
  if (rank0_) write_pairs_jsonl(file, pairs);
  comm_.barrier();
  log() << "[dpo] " << pairs.size() << " pairs -> " << file.string() << "\n";
}

// The sampling settings of generate.*; round r (0-based) samples with seed generate.seed + r.
GenerationConfig DpoStage::sampling_config(int64_t round) const {
  GenerationConfig config;
  config.max_new_tokens = r_.generate.max_new_tokens;
  config.temperature = r_.generate.temperature;
  config.top_k = r_.generate.top_k;
  config.top_p = r_.generate.top_p;
  config.seed = static_cast<uint64_t>(r_.generate.seed + round);
  return config;
}

// generate.completions samples of every prompt (prompt-major) from the model as routed now, and
// whether each stopped at max_new_tokens. Each rank samples a contiguous share of the prompts;
// the random streams depend on the prompt's index only, so the samples do not depend on the
// number of ranks.
Samples DpoStage::sample_answers(const std::vector<std::string>& prompts,
                                 const GenerationConfig& config, const std::string& model_name) {
  const int64_t P = static_cast<int64_t>(prompts.size()), W = comm_.world_size();
  const int64_t begin = P * comm_.rank() / W, end = P * (comm_.rank() + 1) / W;
  const double t0 = steady_clock_seconds();
  std::vector<bool> cut;  // per sample of this rank: stopped at max_new_tokens
  const std::vector<std::string> mine =
      sample_completions(*model_, *tokenizer_, r_.data.prompt_template,
                         std::vector<std::string>(prompts.begin() + begin, prompts.begin() + end),
                         config, r_.generate.completions, begin, /*batch_prompts=*/8, &cut);
  Samples out;
  for (const auto& part : comm_.all_gather_strings(
           nlohmann::json({{"texts", mine}, {"truncated", cut}})
               .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))) {
    const nlohmann::json gathered = nlohmann::json::parse(part);
    for (const auto& s : gathered.at("texts"))
      out.texts.push_back(s.get<std::string>());
    for (const auto& t : gathered.at("truncated"))
      out.truncated.push_back(t.get<bool>());
  }
  const int64_t n_cut = std::count(out.truncated.begin(), out.truncated.end(), true);
  log() << "[dpo] sampled " << out.texts.size() << " answers from " << model_name << " in "
        << seconds_text(steady_clock_seconds() - t0) << " s; " << n_cut
        << " stopped at max_new_tokens (trained without a closing EOS)\n";
  return out;
}

// Every user's pairs among its samples of the prompts (samples_of(user)), prompt-major with the
// users in name order; logs the prompts where a user found no pair.
std::vector<TextPair> DpoStage::pick_all_pairs(
    const std::vector<std::string>& prompts,
    const std::function<const Samples&(const std::string& user)>& samples_of) {
  const size_t K = static_cast<size_t>(r_.generate.completions);
  std::map<std::string, std::vector<std::vector<TextPair>>> picked;  // user -> per prompt
  for_each_judge(users_, [&](const std::string& user, judges::Judge& judge) {
    const Samples& mine = samples_of(user);
    const auto& texts = mine.texts;
    std::vector<std::vector<std::string>> answers(prompts.size());
    std::vector<std::set<std::string>> cut_texts(prompts.size());
    for (size_t i = 0; i < prompts.size(); ++i) {
      answers[i].assign(texts.begin() + i * K, texts.begin() + (i + 1) * K);
      for (size_t k = i * K; k < (i + 1) * K; ++k)
        if (mine.truncated[k]) cut_texts[i].insert(texts[k]);
    }
    picked[user] =
        pick_pairs(user, judge, prompts, answers, r_.generate.pairs_per_prompt, &cut_texts);
  });
  std::vector<TextPair> pairs;               // prompt-major, users in name order
  std::map<std::string, int64_t> undecided;  // prompts where a user found no pair
  for (size_t i = 0; i < prompts.size(); ++i)
    for (const auto& user : users_) {
      const auto& mine = picked[user][i];
      if (mine.empty()) ++undecided[user];
      pairs.insert(pairs.end(), mine.begin(), mine.end());
    }
  for (const auto& [user, count] : undecided)
    log() << "[dpo]   " << user << ": no preference among the answers to " << count << " of "
          << prompts.size() << " prompts\n";
  return pairs;
}

// The pairs of a file, tokenized (split_pairs then splits them).
void DpoStage::use_pairs(const fs::path& file) {
  pairs_ =
      data::UserPairs::from_jsonl(file, [this](const std::string& field, const std::string& text) {
        return encode_field(field, text);
      });
}

// generate.rounds: round r (0-based) trains steps round_start(r) + 1 .. round_start(r + 1).
int64_t DpoStage::round_start(int64_t round) const {
  return round * r_.train.max_steps / r_.generate.rounds;
}

// The round of the step after `step` completed steps.
int64_t DpoStage::round_at(int64_t step) const {
  int64_t round = 0;
  while (round + 1 < r_.generate.rounds && round_start(round + 1) <= step)
    ++round;
  return round;
}

fs::path DpoStage::round_pairs_file(int64_t round) const {
  return round == 0 ? run_dir_ / "pairs.jsonl"
                    : run_dir_ / ("pairs_round_" + std::to_string(round + 1) + ".jsonl");
}

// Round r >= 1 of iterative DPO: each user's adapter, as trained so far, samples answers to the
// training prompts; the user's judge picks the round's pairs among them (a user whose samples
// give no pair keeps its pairs of the round before). The held-out pairs stay those of round 1,
// so the held-out margins of every round compare. Written to pairs_round_<r + 1>.jsonl before the
// round trains: a resumed run reads the file of its checkpoint's round back (`resuming`).
void DpoStage::start_round(int64_t round, bool resuming) {
  const fs::path file = round_pairs_file(round);
  if (resuming) {
    if (!fs::exists(file))
      throw Error("dpo", "resume: the checkpoint was taken in round " + std::to_string(round + 1) +
                             " but that round's pairs " + file.string() + " are missing");
    log() << "[dpo] resume: reusing " << file.string() << "\n";
  } else {
    log() << "[dpo] round " << round + 1 << " of " << r_.generate.rounds << " (steps "
          << round_start(round) + 1 << "-" << round_start(round + 1) << "): sampling "
          << r_.generate.completions << " answers to each of " << train_prompts_.size()
          << " training prompts from each user's adapter\n";
    model_->eval();  // no LoRA dropout while sampling
    std::map<std::string, Samples> samples;
    for (const auto& user : users_) {
      bank_->route_all(user);
      samples[user] = sample_answers(train_prompts_, sampling_config(round), user + "'s adapter");
    }
    bank_->clear_route();
    model_->train();
    std::vector<TextPair> pairs =
        pick_all_pairs(train_prompts_,
                       [&](const std::string& user) -> const Samples& { return samples.at(user); });
    std::set<std::string> renewed;
    for (const auto& pair : pairs)
      renewed.insert(pair.user);
    const auto text_pair = [this](int64_t i) {
      const data::UserPair& p = pairs_->pair(i);
      return TextPair{p.user,          p.prompt_text,      p.chosen_text,
                      p.rejected_text, p.chosen_truncated, p.rejected_truncated};
    };
    for (size_t u = 0; u < users_.size(); ++u) {
      if (!renewed.count(users_[u])) {
        log() << "[dpo]   " << users_[u] << ": no pair among its adapter's samples; keeps its "
              << train_of_[u].size() << " pairs of round " << round << "\n";
        for (int64_t i : train_of_[u])
          pairs.push_back(text_pair(i));
      }
      for (int64_t i : eval_of_[u])
        pairs.push_back(text_pair(i));
    }
    if (rank0_) write_pairs_jsonl(file, pairs);
    comm_.barrier();
    log() << "[dpo] round " << round + 1 << ": " << pairs.size() << " pairs -> " << file.string()
          << "\n";
  }
  use_pairs(file);
  split_pairs();
  round_ = round;
  reset_samplers();
  if (r_.dpo.precompute_reference) precompute_reference();
  if (metrics_ && !resuming) {
    nlohmann::json record = {{"round", round + 1}};
    for (size_t u = 0; u < users_.size(); ++u)
      record["users/" + users_[u] + "/round_pairs"] = train_of_[u].size();
    metrics_->log(step_ + 1, record);  // with the round's first step (a resume cuts it off)
  }
}

// Held-out pairs: generated data holds out its held-out prompts' pairs; a pairs file holds out
// a seeded share of each user's pairs.
void DpoStage::split_pairs() {
  train_of_.assign(users_.size(), {});
  eval_of_.assign(users_.size(), {});
  const std::set<std::string> eval_prompts(eval_prompts_.begin(), eval_prompts_.end());
  for (size_t u = 0; u < users_.size(); ++u) {
    const auto mine = pairs_->indices_of(users_[u]);
    if (r_.data.source == "generated") {
      for (int64_t i : mine)
        (eval_prompts.count(pairs_->pair(i).prompt_text) ? eval_of_ : train_of_)[u].push_back(i);
    } else {
      data::EpochSampler split(static_cast<int64_t>(mine.size()),
                               user_seed(split_seed(r_), users_[u], kSplitStream));
      const auto order = split.permutation(0);
      const int64_t n_eval =
          held_out_count(r_.data.eval_fraction, static_cast<int64_t>(mine.size()));
      for (size_t k = 0; k < order.size(); ++k)
        (static_cast<int64_t>(k) < n_eval ? eval_of_ : train_of_)[u].push_back(
            mine[static_cast<size_t>(order[k])]);
      std::sort(train_of_[u].begin(), train_of_[u].end());
      std::sort(eval_of_[u].begin(), eval_of_[u].end());
    }
    if (train_of_[u].empty())
      throw Error("dpo", "user '" + users_[u] + "' has no training pairs" +
                             (r_.data.source == "generated"
                                  ? " (its oracles preferred none of the base's answers; more "
                                    "prompts or generate.completions may help)"
                                  : " in " + r_.data.path.string()));
  }
  if (r_.data.source == "pairs") {
    // The win rates sample the held-out pairs' prompts, each once.
    std::set<std::string> seen;
    for (const auto& list : eval_of_)
      for (int64_t i : list)
        if (seen.insert(pairs_->pair(i).prompt_text).second)
          eval_prompts_.push_back(pairs_->pair(i).prompt_text);
  }
}

// The reference is the frozen base, so a pair's reference log-probs never change: computed once
// here instead of once per step (a forward pass of the base per row saved in every step). Pairs
// with the same prompt and the same two responses (users with opposite tastes often pick the
// same two answers, in opposite order) are computed once. The distinct pairs go in batches of
// train.micro_batch_size (16 when 0) in a fixed order, dealt to the ranks in turn and summed
// over them, so every rank gets the numbers one process computes.
void DpoStage::precompute_reference() {
  const double t0 = steady_clock_seconds();
  using Key = std::array<std::vector<int32_t>, 3>;  // prompt, the smaller response, the larger
  std::map<Key, int64_t> slot_of;
  std::vector<int64_t> first;  // a pair index per distinct pair, in order of first appearance
  std::vector<std::pair<int64_t, bool>> slot_of_pair(static_cast<size_t>(pairs_->size()),
                                                     {-1, false});  // slot, swapped
  for (const auto& list : train_of_)
    for (int64_t i : list) {
      const data::UserPair& pair = pairs_->pair(i);
      const bool swapped = pair.rejected < pair.chosen;
      Key key{pair.prompt, swapped ? pair.rejected : pair.chosen,
              swapped ? pair.chosen : pair.rejected};
      const auto [it, fresh] = slot_of.emplace(std::move(key), static_cast<int64_t>(first.size()));
      if (fresh) first.push_back(i);
      // The slot holds the log-probs in the order of its first pair.
      const bool first_swapped = pairs_->pair(first[static_cast<size_t>(it->second)]).rejected <
                                 pairs_->pair(first[static_cast<size_t>(it->second)]).chosen;
      slot_of_pair[static_cast<size_t>(i)] = {it->second, swapped != first_swapped};
    }
  const int64_t n = static_cast<int64_t>(first.size());
  const int64_t batch = r_.train.micro_batch_size > 0 ? r_.train.micro_batch_size : 16;
  at::Tensor values = at::zeros({n, 2}, at::kFloat);  // [slot] {chosen, rejected} of its pair
  {
    AutocastScope autocast(r_.train.precision == Precision::kBf16Autocast, at::kCPU);
    int64_t b = 0;
    for (int64_t start = 0; start < n; start += batch, ++b) {
      if (b % comm_.world_size() != comm_.rank()) continue;
      const int64_t m = std::min(batch, n - start);
      const std::vector<int64_t> chunk(first.begin() + start, first.begin() + start + m);
      const at::Tensor ref =
          reference_log_probs(*model_, *bank_, pairs_->collate(chunk, collate_), at::kCPU)
              .to(at::kFloat);
      values.narrow(0, start, m).select(1, 0).copy_(ref.narrow(0, 0, m));
      values.narrow(0, start, m).select(1, 1).copy_(ref.narrow(0, m, m));
    }
  }
  values = sum_over_ranks(comm_, values);  // each slot computed by one rank, zeros elsewhere: exact
  const float* v = values.data_ptr<float>();
  reference_.assign(static_cast<size_t>(pairs_->size()), {NAN, NAN});
  for (size_t i = 0; i < slot_of_pair.size(); ++i) {
    const auto [slot, swap] = slot_of_pair[i];
    if (slot < 0) continue;
    const float c = v[2 * slot], r = v[2 * slot + 1];
    reference_[i] = swap ? std::array<float, 2>{r, c} : std::array<float, 2>{c, r};
  }
  int64_t train_pairs = 0;
  for (const auto& list : train_of_)
    train_pairs += static_cast<int64_t>(list.size());
  log() << "[dpo] reference log-probs of " << train_pairs << " training pairs (" << n
        << " distinct) computed once in " << seconds_text(steady_clock_seconds() - t0) << " s\n";
}

// The precomputed reference of a batch's pairs, as reference_log_probs orders it: [2B], every
// pair's chosen first, then every pair's rejected.
at::Tensor DpoStage::reference_of(const std::vector<int64_t>& pairs) const {
  const int64_t B = static_cast<int64_t>(pairs.size());
  at::Tensor out = at::empty({2 * B}, at::kFloat);
  float* o = out.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& value = reference_[static_cast<size_t>(pairs[static_cast<size_t>(b)])];
    if (std::isnan(value[0]) || std::isnan(value[1]))
      throw Error("dpo", "internal: no precomputed reference for pair " +
                             std::to_string(pairs[static_cast<size_t>(b)]));
    o[b] = value[0];
    o[B + b] = value[1];
  }
  return out;
}

void DpoStage::resume() {
  if (!r_.train.resume) return;
  const auto latest = latest_checkpoint(run_dir_);
  if (!latest) {
    log() << "[dpo] resume: no checkpoint in " << run_dir_.string() << ", starting from step 0\n";
    return;
  }
  // The reader opens both layouts (one process's files, or a sharded checkpoint of any world
  // size), so a run resumes into any dist.zero_stage.
  const dist::ShardedCheckpointReader reader(*latest);
  const TrainerState& state = reader.state();
  if (state.recipe_hash != dpo_recipe_hash(r_))
    throw Error("dpo", latest->string() + " was written by a different recipe (hash " +
                           state.recipe_hash + ", this one " + dpo_recipe_hash(r_) +
                           "); resume needs the recipe of that run");
  if (state.extra.value("users", nlohmann::json::array()) != nlohmann::json(users_))
    throw Error("dpo", latest->string() + ": its users differ from this run's");
  {
    torch::NoGradGuard no_grad;
    auto params = model_->named_parameters();
    TensorMap optimizer_state;
    for (const auto& info : reader.tensors()) {
      if (info.kind == "optimizer") {
        if (!engine_) optimizer_state[info.name] = reader.read(info.name);
        continue;
      }
      auto* param = params.find(info.name);
      if (!param)
        throw Error("dpo", latest->string() + ": tensor " + info.name + " is not in the model");
      if (engine_ && param->requires_grad()) continue;  // the engine reads its own part
      param->copy_(reader.read(info.name));
    }
    if (engine_) {
      engine_->load_checkpoint(reader, /*include_frozen=*/false);
    } else {
      optimizer_->import_state(optimizer_state);
    }
  }
  step_ = state.step;
  // The checkpoint's round: its pairs (written before that round trained) and pair order.
  if (const int64_t round = state.extra.value("round", int64_t{0}); round > 0)
    start_round(round, /*resuming=*/true);
  const auto& positions = state.extra.at("samplers");
  for (size_t u = 0; u < samplers_.size(); ++u)
    samplers_[u].set_position({positions[u][0].get<int64_t>(), positions[u][1].get<int64_t>()});
  const auto& ranks = state.rng.at("ranks");
  if (ranks.size() == static_cast<size_t>(comm_.world_size())) {
    restore_torch_rng_states(ranks[comm_.rank()]);
  } else {
    torch::manual_seed(static_cast<uint64_t>(r_.seed) ^ (static_cast<uint64_t>(step_) << 20) ^
                       (7919ULL * comm_.rank()));
    log() << "[dpo] resume: world size changed, RNG streams reseeded (only LoRA dropout notices)\n";
  }
  if (metrics_) metrics_->truncate_after(step_);
  last_checkpoint_step_ = step_;
  log() << "[dpo] resumed from " << latest->string() << " at step " << step_ << "\n";
}

// Each user's pair order over its training pairs of the current round, from the seed and the
// user's name (round 1's stream is the one a run without rounds uses).
void DpoStage::reset_samplers() {
  samplers_.clear();
  for (size_t u = 0; u < users_.size(); ++u)
    samplers_.emplace_back(static_cast<int64_t>(train_of_[u].size()),
                           user_seed(static_cast<uint64_t>(r_.seed), users_[u],
                                     kSamplerStream + 16 * static_cast<uint64_t>(round_)));
}

// This rank's pairs of the next step: every user's next pairs_per_user pairs (the same draw on
// every rank), this rank's share of each, interleaved by user so every pass mixes the users.
std::vector<int64_t> DpoStage::next_step_pairs() {
  const int64_t P = r_.train.pairs_per_user, W = comm_.world_size(), share = P / W;
  std::vector<std::vector<int64_t>> of_user(users_.size());
  for (size_t u = 0; u < users_.size(); ++u) {
    const auto global = samplers_[u].next_batch(P);
    for (int64_t k = share * comm_.rank(); k < share * (comm_.rank() + 1); ++k)
      of_user[u].push_back(train_of_[u][static_cast<size_t>(global[static_cast<size_t>(k)])]);
  }
  std::vector<int64_t> mine;
  for (int64_t k = 0; k < share; ++k)
    for (const auto& list : of_user)
      mine.push_back(list[static_cast<size_t>(k)]);
  return mine;
}

std::vector<at::Tensor> DpoStage::bank_parameters() const {
  std::vector<at::Tensor> params;
  for (const auto& item : model_->named_parameters())
    if (is_adapter_bank_parameter(item.key())) params.push_back(item.value());
  return params;
}

// Sums the adapters' gradients over the ranks (in float32, one collective).
void DpoStage::reduce_gradients() {
  if (comm_.world_size() == 1) return;
  std::vector<at::Tensor> flat;
  const auto params = bank_parameters();
  for (const auto& p : params)
    flat.push_back(p.grad().defined() ? p.grad().to(at::kFloat).reshape({-1})
                                      : at::zeros({p.numel()}, at::kFloat));
  at::Tensor all = at::cat(flat).to(comm_.device());
  comm_.all_reduce_sum(all);
  all = all.cpu();
  int64_t offset = 0;
  torch::NoGradGuard no_grad;
  for (const auto& p : params) {
    const at::Tensor summed = all.narrow(0, offset, p.numel()).view(p.sizes()).to(p.dtype());
    if (p.grad().defined())
      p.mutable_grad().copy_(summed);
    else
      p.mutable_grad() = summed.clone();
    offset += p.numel();
  }
}

void DpoStage::train() {
  model_->train();
  const size_t U = users_.size();
  std::map<std::string, double> pair_weights;  // each user's mean over its pairs of the step
  for (const auto& user : users_)
    pair_weights[user] = 1.0 / static_cast<double>(r_.train.pairs_per_user);
  ProgressLine progress({r_.train.max_steps, step_, 10.0, 20}, log());
  while (step_ < r_.train.max_steps) {
    if (const int64_t round = round_at(step_); round != round_) start_round(round, false);
    maybe_inject_fault(comm_.rank(), step_ + 1);
    const std::vector<int64_t> mine = next_step_pairs();
    const size_t micro = r_.train.micro_batch_size > 0
                             ? static_cast<size_t>(r_.train.micro_batch_size)
                             : mine.size();
    // Per user: the statistics summed over its pairs, then the pair count; and the tokens.
    at::Tensor sums = at::zeros({static_cast<int64_t>(U) * (kStats + 1) + 1}, at::kDouble);
    double* s = sums.data_ptr<double>();
    {
      AutocastScope autocast(r_.train.precision == Precision::kBf16Autocast, at::kCPU);
      for (size_t start = 0; start < mine.size(); start += micro) {
        const std::vector<int64_t> chunk(mine.begin() + start,
                                         mine.begin() + std::min(mine.size(), start + micro));
        const data::PairBatch batch = pairs_->collate(chunk, collate_);
        const at::Tensor reference = reference_.empty() ? at::Tensor() : reference_of(chunk);
        const auto stats =
            dpo_forward_backward(*model_, *bank_, batch, step_config_, at::kCPU, &pair_weights,
                                 reference.defined() ? &reference : nullptr);
        if (engine_) engine_->after_backward();
        for (size_t u = 0; u < U; ++u) {
          const auto it = stats.find(users_[u]);
          if (it == stats.end()) continue;
          const auto values = stat_values(it->second);
          for (int k = 0; k < kStats; ++k)
            s[u * (kStats + 1) + k] += values[k] * static_cast<double>(it->second.pairs);
          s[u * (kStats + 1) + kStats] += static_cast<double>(it->second.pairs);
        }
        s[U * (kStats + 1)] += batch.rows.attention_mask.sum().item<double>();
      }
    }
    const double lr = schedule_->lr_at(step_);
    std::vector<double> norms;
    if (engine_) {
      engine_->reduce_gradients();
      norms = clip_bank_gradients_per_user(*bank_, *engine_, comm_, r_.optimizer.grad_clip);
      engine_->step(lr);
      engine_->zero_grad();
    } else {
      reduce_gradients();
      norms = clip_bank_gradients_per_user(*bank_, *model_, r_.optimizer.grad_clip);
      optimizer_->step(lr);
      optimizer_->zero_grad();
    }
    sums = sum_over_ranks(comm_, sums);
    s = sums.data_ptr<double>();
    step_ += 1;

    // Per-user means; the overall numbers are means over the users (each user counts once).
    nlohmann::json record;
    std::array<double, kStats> overall{};
    double norm_sq = 0;
    for (size_t u = 0; u < U; ++u) {
      const double n = std::max(1.0, s[u * (kStats + 1) + kStats]);
      for (int k = 0; k < kStats; ++k) {
        const double mean = s[u * (kStats + 1) + k] / n;
        overall[k] += mean / static_cast<double>(U);
        record["users/" + users_[u] + "/" + kStatNames[k]] = mean;
      }
      record["users/" + users_[u] + "/grad_norm"] = norms[u];
      norm_sq += norms[u] * norms[u];
    }
    for (int k = 0; k < kStats; ++k)
      record[kStatNames[k]] = overall[k];
    const int64_t tokens = static_cast<int64_t>(s[U * (kStats + 1)]);
    const bool last = step_ == r_.train.max_steps;
    const bool log_now = last || step_ % r_.train.log_every == 0;
    progress.update(step_, tokens, overall[0], lr, log_now);
    if (log_now) {
      double peak_rss_max = peak_rss_mib();
      if (comm_.world_size() > 1)
        for (const auto& value : comm_.all_gather_strings(std::to_string(peak_rss_max)))
          peak_rss_max = std::max(peak_rss_max, std::stod(value));
      if (U <= 8) {
        std::ostringstream line;
        line << std::fixed << std::setprecision(3) << "[dpo] step " << step_
             << " reward acc/margin:";
        for (size_t u = 0; u < U; ++u)
          line << " " << users_[u] << " "
               << record["users/" + users_[u] + "/rewards/accuracies"].get<double>() << "/"
               << record["users/" + users_[u] + "/rewards/margins"].get<double>();
        log() << line.str() << "\n";
      }
      record["lr"] = lr;
      record["grad_norm"] = std::sqrt(norm_sq);
      record["tokens"] = tokens;
      record["tokens_per_s"] = progress.tokens_per_second();
      record["peak_rss_mib"] = peak_rss_mib();
      record["peak_rss_mib_max_rank"] = peak_rss_max;
      record["world_size"] = comm_.world_size();
      // The adapters' model state on rank 0 (ranks differ only by padding); see dist/zero.h.
      record["zero_stage"] = r_.dist.zero_stage;
      record["trainable_params"] = trainable_params_;
      record["state_bytes_params"] = state_bytes_.params;
      record["state_bytes_grads"] = state_bytes_.grads;
      record["state_bytes_optimizer"] = state_bytes_.optimizer;
      if (metrics_) metrics_->log(step_, record);
    }
    if (r_.train.eval_every > 0 && step_ % r_.train.eval_every == 0 && !last)
      evaluate_margins(/*final=*/false);
    if (r_.train.checkpoint_every > 0 && step_ % r_.train.checkpoint_every == 0 && !last)
      save_checkpoint();
  }
}

// The held-out pairs under each user's adapter and under the base: implicit-reward accuracy and
// margins, and the policy's log-prob margin log pi(chosen) - log pi(rejected) of every pair
// (written to eval_pairs.jsonl at the end; `tailor score --adapter export/users/<user>` gives the
// same numbers). The ranks split the pairs.
nlohmann::json DpoStage::evaluate_margins(bool final) {
  std::vector<int64_t> all;
  for (const auto& list : eval_of_)
    all.insert(all.end(), list.begin(), list.end());
  if (all.empty()) return nlohmann::json::object();
  torch::NoGradGuard no_grad;
  model_->eval();
  nlohmann::json mine = nlohmann::json::array();  // [index, pc, pr, ref_c, ref_r]
  const size_t batch_pairs =
      r_.train.micro_batch_size > 0 ? static_cast<size_t>(r_.train.micro_batch_size) : 8;
  std::vector<int64_t> share;
  for (size_t i = static_cast<size_t>(comm_.rank()); i < all.size();
       i += static_cast<size_t>(comm_.world_size()))
    share.push_back(all[i]);
  for (size_t start = 0; start < share.size(); start += batch_pairs) {
    const std::vector<int64_t> chunk(share.begin() + start,
                                     share.begin() + std::min(share.size(), start + batch_pairs));
    const data::PairBatch batch = pairs_->collate(chunk, collate_);
    const int64_t B = batch.pairs();
    const at::Tensor ref = reference_log_probs(*model_, *bank_, batch, at::kCPU);
    const at::Tensor policy = policy_log_probs(*model_, *bank_, batch, at::kCPU);
    const at::Tensor p = policy.to(at::kDouble), q = ref.to(at::kDouble);
    for (int64_t b = 0; b < B; ++b)
      mine.push_back({chunk[static_cast<size_t>(b)], p[b].item<double>(), p[B + b].item<double>(),
                      q[b].item<double>(), q[B + b].item<double>()});
  }
  model_->train();
  std::map<int64_t, std::array<double, 4>> result;
  for (const auto& part : comm_.all_gather_strings(mine.dump()))
    for (const auto& e : nlohmann::json::parse(part))
      result[e[0].get<int64_t>()] = {e[1].get<double>(), e[2].get<double>(), e[3].get<double>(),
                                     e[4].get<double>()};

  const double beta = r_.dpo.beta;
  nlohmann::json record, per_user;
  std::string lines;
  double acc_sum = 0, margin_sum = 0, logp_margin_sum = 0;
  int64_t users_with_pairs = 0;
  for (size_t u = 0; u < users_.size(); ++u) {
    if (eval_of_[u].empty()) continue;
    double acc = 0, margin = 0, logp_margin = 0;
    for (int64_t i : eval_of_[u]) {
      const auto& [pc, pr, qc, qr] = result.at(i);
      const double rc = beta * (pc - qc), rr = beta * (pr - qr);
      acc += rc > rr ? 1.0 : 0.0;
      margin += rc - rr;
      logp_margin += pc - pr;
      if (final) {
        const auto& pair = pairs_->pair(i);
        nlohmann::json line = {{"user", users_[u]},          {"prompt", pair.prompt_text},
                               {"chosen", pair.chosen_text}, {"rejected", pair.rejected_text},
                               {"logp_chosen", pc},          {"logp_rejected", pr},
                               {"margin", pc - pr},          {"ref_logp_chosen", qc},
                               {"ref_logp_rejected", qr}};
        if (pair.chosen_truncated) line["chosen_truncated"] = true;
        if (pair.rejected_truncated) line["rejected_truncated"] = true;
        lines += line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
      }
    }
    const double n = static_cast<double>(eval_of_[u].size());
    per_user[users_[u]] = {{"pairs", eval_of_[u].size()},
                           {"rewards/accuracies", acc / n},
                           {"rewards/margins", margin / n},
                           {"logps/margin", logp_margin / n}};
    record["eval/users/" + users_[u] + "/rewards/accuracies"] = acc / n;
    record["eval/users/" + users_[u] + "/rewards/margins"] = margin / n;
    acc_sum += acc / n;
    margin_sum += margin / n;
    logp_margin_sum += logp_margin / n;
    ++users_with_pairs;
  }
  record["eval/rewards/accuracies"] = acc_sum / users_with_pairs;
  record["eval/rewards/margins"] = margin_sum / users_with_pairs;
  record["eval/logps/margin"] = logp_margin_sum / users_with_pairs;
  if (metrics_) metrics_->log(step_, record);
  log() << "[dpo] step " << step_ << " held-out reward accuracy "
        << record["eval/rewards/accuracies"].get<double>() << ", margin "
        << record["eval/rewards/margins"].get<double>() << " (mean over users)\n";
  if (final && rank0_) write_file_atomic(run_dir_ / "eval_pairs.jsonl", lines);
  return per_user;
}

// The seed's win rates: for each held-out prompt, eval.completions samples from each user's
// adapter and from the base with the same seeds; the user's judge compares sample r of the
// adapter with sample r of the base. The ranks split the prompts.
nlohmann::json DpoStage::evaluate_win_rates() {
  std::vector<std::string> judged;  // users with a judge (in `users` or `reward_users`)
  for (const auto& user : users_)
    if (has_judge(user)) judged.push_back(user);
  if (r_.eval.completions == 0 || judged.empty() || eval_prompts_.empty())
    return nlohmann::json::object();
  std::vector<std::string> prompts = eval_prompts_;
  if (r_.eval.prompts > 0 && static_cast<int64_t>(prompts.size()) > r_.eval.prompts)
    prompts.resize(static_cast<size_t>(r_.eval.prompts));
  const int64_t P = static_cast<int64_t>(prompts.size()), W = comm_.world_size();
  const int64_t begin = P * comm_.rank() / W, end = P * (comm_.rank() + 1) / W;
  const std::vector<std::string> share(prompts.begin() + begin, prompts.begin() + end);
  GenerationConfig config;
  config.max_new_tokens = r_.eval.max_new_tokens;
  config.temperature = r_.eval.temperature;
  config.top_k = r_.eval.top_k;
  config.top_p = r_.eval.top_p;
  config.seed = static_cast<uint64_t>(r_.eval.seed);
  const int64_t K = r_.eval.completions;
  log() << "[dpo] win rates: " << K << " samples for each of " << P
        << " held-out prompts from the base and from " << users_.size() << " adapters\n";
  const double t0 = steady_clock_seconds();
  nlohmann::json mine;  // {"": base samples, user: samples}
  bank_->clear_route();
  mine[""] =
      sample_completions(*model_, *tokenizer_, r_.data.prompt_template, share, config, K, begin);
  for (const auto& user : users_) {
    bank_->route_all(user);
    mine[user] =
        sample_completions(*model_, *tokenizer_, r_.data.prompt_template, share, config, K, begin);
  }
  bank_->clear_route();
  std::map<std::string, std::vector<std::string>> samples;  // "" = the base
  for (const auto& part : comm_.all_gather_strings(
           mine.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))) {
    const nlohmann::json parsed = nlohmann::json::parse(part);  // items() refers into it
    for (const auto& [who, list] : parsed.items())
      for (const auto& text : list)
        samples[who].push_back(text.get<std::string>());
  }
  log() << "[dpo] sampled in " << seconds_text(steady_clock_seconds() - t0) << " s\n";

  std::vector<std::vector<Comparison>> comparisons;  // per adapter (users_ order)
  for (const auto& user : users_) {
    std::vector<Comparison> list;
    for (size_t i = 0; i < prompts.size() * static_cast<size_t>(K); ++i)
      list.push_back({prompts[i / static_cast<size_t>(K)], samples[user][i], samples[""][i]});
    comparisons.push_back(std::move(list));
  }
  // Each judge takes all its comparisons in one call: with eval.cross_user every adapter's
  // (column j of the matrix), else only its own user's.
  std::map<std::string, WinRate> own;  // judge -> its adapter's win rate
  std::vector<std::vector<double>> matrix(users_.size(),
                                          std::vector<double>(judged.size()));  // [adapter][judge]
  for_each_judge(judged, [&](const std::string& user, judges::Judge& judge) {
    const size_t u = static_cast<size_t>(bank_->index_of(user));
    if (r_.eval.cross_user) {
      const size_t j =
          static_cast<size_t>(std::find(judged.begin(), judged.end(), user) - judged.begin());
      const std::vector<WinRate> column = win_rates(comparisons, judge);
      for (size_t i = 0; i < users_.size(); ++i)
        matrix[i][j] = column[i].rate();
      own[user] = column[u];
    } else {
      own[user] = win_rates({comparisons[u]}, judge).front();
    }
  });
  nlohmann::json out;
  std::ostringstream table;
  table << std::fixed << std::setprecision(3)
        << "[dpo] win rate of each user's adapter against the base, judged by that user (" << P
        << " prompts x " << K << " samples; ties count half):\n";
  for (size_t j = 0; j < judged.size(); ++j) {
    const WinRate& w = own.at(judged[j]);
    out["win_rate"][judged[j]] = {
        {"wins", w.wins}, {"ties", w.ties}, {"losses", w.losses}, {"rate", w.rate()}};
    table << "  " << std::setw(16) << std::left << judged[j] << std::right << " " << w.rate()
          << "  (" << w.wins << " wins, " << w.ties << " ties, " << w.losses << " losses)\n";
  }
  if (r_.eval.cross_user) {
    out["cross_user"] = {{"adapters", users_}, {"judges", judged}, {"win_rate", matrix}};
    table << "[dpo] cross-user win rates against the base (row: adapter, column: judge):\n"
          << std::setw(18) << "";
    for (const auto& j : judged)
      table << std::setw(10) << j.substr(0, 9);
    table << "\n";
    for (size_t i = 0; i < users_.size(); ++i) {
      table << "  " << std::setw(16) << std::left << users_[i] << std::right;
      for (double v : matrix[i])
        table << std::setw(10) << v;
      table << "\n";
    }
  }
  if (rank0_) {
    std::cout << table.str() << std::flush;
    std::string lines;
    for (size_t i = 0; i < prompts.size() * static_cast<size_t>(K); ++i) {
      nlohmann::json line = {{"prompt", prompts[i / static_cast<size_t>(K)]},
                             {"sample", i % static_cast<size_t>(K)},
                             {"base", samples[""][i]}};
      for (const auto& user : users_)
        line["users"][user] = samples[user][i];
      lines += line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
    write_file_atomic(run_dir_ / "eval_samples.jsonl", lines);
  }
  if (metrics_) {
    nlohmann::json record;
    for (const auto& [user, w] : out["win_rate"].items())
      record["eval/users/" + user + "/win_rate"] = w["rate"];
    metrics_->log(step_, record);
  }
  return out;
}

// Rank 0 writes the adapters, their AdamW state, the sampler positions and every rank's RNG
// state; `latest` names it only once complete (trainer/run/checkpoint.h). Under the ZeRO engine
// every rank writes its chunks of the adapters and their AdamW state (dist/sharded_checkpoint.h),
// rank 0 the base too when the run stores it.
void DpoStage::save_checkpoint() {
  TrainerState state;
  state.step = step_;
  state.recipe_hash = dpo_recipe_hash(r_);
  state.extra["users"] = users_;
  nlohmann::json positions = nlohmann::json::array();
  for (const auto& sampler : samplers_)
    positions.push_back({sampler.position().epoch, sampler.position().index});
  state.extra["samplers"] = positions;  // over the training pairs of round state.extra.round
  state.extra["round"] = round_;
  ModelProvenance provenance;
  provenance.config = model_->hf_config(dtype_);
  provenance.lora = lora_;
  provenance.tokenizer = fs::absolute(r_.tokenizer);
  provenance.dtype = dtype_ == at::kBFloat16 ? "bfloat16" : "float32";
  if (!stores_base()) provenance.base_model = fs::absolute(r_.model.path);
  state.extra["model"] = provenance_to_json(provenance);
  state.extra["dpo"] = {{"users", users_}};
  if (engine_) {
    state.extra["dist"] = {{"world_size", comm_.world_size()}, {"zero_stage", engine_->stage()}};
    state.rng = capture_torch_rng_states();  // gathered into {"ranks": [...]}
    std::vector<dist::TensorInfo> tensors = engine_->checkpoint_tensors(/*include_frozen=*/false);
    std::vector<dist::ShardPiece> pieces = engine_->checkpoint_pieces(/*include_frozen=*/false);
    if (stores_base())
      for (const auto& item : model_->named_parameters()) {
        const at::Tensor& p = item.value();
        if (p.requires_grad()) continue;
        tensors.push_back({item.key(), p.scalar_type(), p.sizes().vec(), "model"});
        if (rank0_) pieces.push_back({item.key(), 0, p.detach().contiguous().reshape({-1})});
      }
    dist::SaveShardedOptions options;
    options.keep_last = static_cast<int>(r_.train.keep_checkpoints);
    const fs::path dir =
        dist::save_sharded_checkpoint(comm_, run_dir_, tensors, pieces, state, options);
    log() << "[dpo] checkpoint " << dir.string() << " (sharded over " << comm_.world_size()
          << " ranks)\n";
    last_checkpoint_step_ = step_;
    return;
  }
  const auto rng_states = comm_.all_gather_strings(capture_torch_rng_states().dump());
  if (rank0_) {
    state.rng["ranks"] = nlohmann::json::array();
    for (const auto& s : rng_states)
      state.rng["ranks"].push_back(nlohmann::json::parse(s));
    TensorMap tensors;
    for (const auto& item : model_->named_parameters())
      if (stores_base() || is_adapter_bank_parameter(item.key()))
        tensors[item.key()] = item.value();
    SaveCheckpointOptions options;
    options.keep_last = static_cast<int>(r_.train.keep_checkpoints);
    const fs::path dir =
        tailor::save_checkpoint(run_dir_, tensors, optimizer_->export_state(), state, options);
    log() << "[dpo] checkpoint " << dir.string() << "\n";
  }
  comm_.barrier();
  last_checkpoint_step_ = step_;
}

// export/users/<user>/: a PEFT adapter per user; with a random base (tests, demos) the base goes
// to export/base/, since no other copy of it exists.
void DpoStage::export_adapters() const {
  const std::string base_name = r_.model.init == ModelInit::kPretrained
                                    ? fs::absolute(r_.model.path).string()
                                    : (run_dir_ / "export" / "base").string();
  const bool fan_in_fan_out = model_->linear_layout() == WeightLayout::kConv1D;
  write_dir_atomic(run_dir_ / "export", [&](const fs::path& tmp) {
    for (const auto& user : users_)
      save_user_peft_adapter(tmp / "users" / user, *bank_, user, lora_, base_name, fan_in_fan_out);
    if (r_.model.init == ModelInit::kRandom) {
      save_pretrained(tmp / "base", *model_);
      save_tokenizer_files(r_.tokenizer, tmp / "base");
    }
    write_file_atomic(tmp / "users.json", nlohmann::json(users_).dump(2) + "\n");
  });
}

void DpoStage::finish() {
  if (last_checkpoint_step_ != step_) save_checkpoint();
  // Evaluation splits its work over the ranks; the export is rank 0's alone while the others
  // wait: no collective timeout until finish() returns.
  const dist::UnboundedWait long_phase;
  const nlohmann::json margins = evaluate_margins(/*final=*/true);
  const nlohmann::json wins = evaluate_win_rates();
  if (rank0_) {
    if (r_.export_.enabled) export_adapters();
    nlohmann::json summary = {{"stage", "dpo"},
                              {"seed", r_.seed},
                              {"users", users_},
                              {"steps", step_},
                              {"pairs_per_user", r_.train.pairs_per_user},
                              {"world_size", comm_.world_size()},
                              {"eval", margins},
                              {"wall_seconds", steady_clock_seconds() - start_time_}};
    nlohmann::json train_pairs, eval_pairs;
    for (size_t u = 0; u < users_.size(); ++u) {
      train_pairs[users_[u]] = train_of_[u].size();
      eval_pairs[users_[u]] = eval_of_[u].size();
    }
    summary["train_pairs"] = train_pairs;  // of the last round
    summary["eval_pairs"] = eval_pairs;
    summary["rounds"] = r_.generate.rounds;
    if (wins.contains("win_rate")) summary["win_rate"] = wins["win_rate"];
    if (wins.contains("cross_user")) summary["cross_user"] = wins["cross_user"];
    write_file_atomic(run_dir_ / "summary.json", summary.dump(2) + "\n");
  }
  comm_.barrier();
  if (!rank0_) return;
  std::cout << "run directory: " << run_dir_.string() << "\n"
            << "  metrics:     " << (run_dir_ / "metrics.jsonl").string() << "\n"
            << "  summary:     " << (run_dir_ / "summary.json").string() << "\n"
            << "  checkpoint:  " << latest_checkpoint(run_dir_)->string() << "\n";
  if (r_.export_.enabled) {
    const fs::path base =
        r_.model.init == ModelInit::kPretrained ? r_.model.path : run_dir_ / "export" / "base";
    std::cout << "  adapters:    " << (run_dir_ / "export" / "users").string() << "/<user> (PEFT)\n"
              << "score one:    ./build/tailor score --model " << base.string() << " --adapter "
              << (run_dir_ / "export" / "users" / users_.front()).string() << " --input "
              << (run_dir_ / "eval_pairs.jsonl").string() << "\n";
  }
}

}  // namespace

int run_dpo_stage(const DpoRecipe& recipe) {
  return run_dpo_stage(recipe, dist::world());
}

int run_dpo_stage(const DpoRecipe& recipe, dist::Communicator& comm) {
  DpoStage stage(recipe, comm);
  stage.setup();
  stage.resume();
  stage.train();
  stage.finish();
  return 0;
}

}  // namespace tailor
