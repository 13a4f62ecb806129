#include "stages/agent/agent_stage.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <tuple>

#include <torch/torch.h>

#include "common/atomic_file.h"
#include "common/device.h"
#include "common/error.h"
#include "common/fnv1a.h"
#include "common/markdown_table.h"
#include "data/sampling/epoch_sampler.h"
#include "data/sft/sft_dataset.h"
#include "dist/runtime.h"
#include "judges/judge.h"
#include "judges/preference_sources.h"
#include "judges/win_rate.h"
#include "models/core/adapter_bank.h"
#include "models/core/lora.h"
#include "models/generation/generate.h"
#include "models/io/pretrained.h"
#include "models/tokenizer/prompt_format.h"
#include "models/tokenizer/tokenizer.h"
#include "stages/agent/agent_world.h"
#include "stages/agent/rule_writer.h"
#include "train/loop/metrics.h"
#include "train/loop/recipe_loop_config.h"
#include "train/loop/training_loop.h"
#include "train/optim/adamw.h"
#include "train/per_user/dpo_step.h"

namespace tailor {
namespace fs = std::filesystem;
namespace {

// The rows of one forward/backward pass while training the adapters: bounds the [rows, T, V]
// logits (V = 50257 for GPT-2's vocabulary).
constexpr int64_t kRowsPerPass = 64;

// One generated answer, and whether it stopped at max_new_tokens instead of EOS.
struct Answer {
  std::string text;
  bool truncated = false;
};

// `count` answers to every prompt (prompt-major: entry i * count + r), prompt i with system text
// systems[i] ("" = none), sampled as the dpo stage samples (judges/preference_sources.h): answer
// r of prompt i draws from the stream (config.seed, first_index + i, r), so two methods asked the
// same task with the same seed share their random numbers.
std::vector<Answer> generate_answers(CausalLMImpl& model, const Tokenizer& tokenizer,
                                     PromptTemplate prompt_template,
                                     const std::vector<std::string>& prompts,
                                     const std::vector<std::string>& systems,
                                     GenerationConfig config, int64_t count,
                                     int64_t first_index = 0) {
  std::vector<bool> truncated;
  const auto texts = sample_completions_with_systems(
      model, tokenizer, prompt_template, prompts, systems, config, count, first_index,
      /*batch_prompts=*/std::max<int64_t>(1, 64 / count), &truncated);
  std::vector<Answer> out(texts.size());
  for (size_t i = 0; i < texts.size(); ++i)
    out[i] = {texts[i], truncated[i]};
  return out;
}

// The greedy output of an LLM step (intent, rules), without surrounding whitespace.
std::string trimmed(const std::string& text) {
  const auto first = text.find_first_not_of(" \n\t\r");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \n\t\r") - first + 1);
}

// The losses in float32 (bf16 logits included), or float64 for a float64 model.
at::ScalarType loss_dtype(const at::Tensor& like) {
  return like.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

uint64_t adapter_seed(uint64_t seed, const std::string& adapter) {
  return Fnv1a64().update(std::to_string(seed) + "/agent/" + adapter).value();
}

LoopConfig loop_config(const AgentRecipe& r) {
  return recipe_loop_config(r, "agent", agent_recipe_hash(r), RecipeChange::kRefuse);
}

// The methods every agent is compared with (the seed's baselines), in the table's order.
const std::vector<std::pair<std::string, std::string>>& baselines() {
  static const std::vector<std::pair<std::string, std::string>> table = {
      {"small", "small baseline (M_S zero-shot)"},
      {"large", "large baseline (M_L zero-shot)"},
      {"few_shot", "few-shot (M_L with the user's examples)"},
      {"naive", "naive fine-tune (M_S on the completions)"},
      {"no_baseline", "no-baseline agent (rules without the zero-shot)"},
  };
  return table;
}

class AgentStage final : public TrainingStage {
 public:
  AgentStage(const AgentRecipe& recipe, TrainingLoop& loop);

  void start_training() override { small_->train(); }
  void forward_backward(int64_t step, Optimizer& optimizer) override;
  // Each adapter's gradient clipped on its own (a global norm would tie the adapters together:
  // one adapter's large gradient would shrink every other's step).
  double clip_gradients(Optimizer& optimizer, double max_norm) override {
    double norm_sq = 0;
    for (double n : clip_bank_gradients_per_user(*bank_, *small_, max_norm))
      norm_sq += n * n;
    return std::sqrt(norm_sq);
  }
  StepResult step_result(int64_t step) override;
  TensorMap restorable_tensors() override { return parameters_by_name(*small_); }
  TensorMap frozen_tensors_to_save() override { return {}; }
  void save_state(TrainerState& state) override;
  void check_checkpoint(const TrainerState& state, const std::string& source) override;
  void load_state(const TrainerState& state, const std::string& source) override;
  void finish(int64_t step) override;

 private:
  void load_models();
  void build_world();
  void sample_demonstrations();
  void derive_rules();
  void build_adapters();
  GenerationConfig sampling(int64_t seed) const;
  GenerationConfig greedy() const;
  // Greedy outputs of M_L for prompts (no system text), trimmed.
  std::vector<std::string> large_steps(const std::vector<std::string>& prompts);
  // The answers of M_L with one system text per task, or of M_S through `adapter` ("" = none),
  // eval.samples per held-out task, prompt-major.
  std::vector<Answer> large_answers(const std::vector<std::string>& prompts,
                                    const std::vector<std::string>& systems);
  std::vector<Answer> small_answers(const std::string& adapter,
                                    const std::vector<std::string>& prompts);
  // The rules an adapter writes for each held-out task (greedy).
  std::vector<std::string> agent_rules(const std::string& adapter);
  // M_L's answers steered by the rules of `adapter`.
  std::vector<Answer> steered_answers(const std::string& adapter,
                                      std::vector<std::string>* rules_out = nullptr);

  const AgentRecipe& r_;
  TrainingLoop& loop_;
  std::optional<Tokenizer> large_tokenizer_, small_tokenizer_;
  CausalLM large_, small_;
  LoraConfig lora_;
  std::unique_ptr<AdapterBank> bank_;
  bool lm_head_adapted_ = false;  // the output layer among the adapters' targets
  AgentTasks tasks_;
  std::vector<std::string> users_;
  std::map<std::string, std::vector<AgentDemo>> demos_;  // per user, in task order
  std::vector<std::string> adapters_;                    // the bank's order
  // Per adapter: its examples as token rows (prompt ids then response ids) and which are learned.
  std::vector<std::vector<std::vector<int32_t>>> rows_;
  std::vector<std::vector<std::vector<bool>>> learned_;
  std::vector<data::EpochSampler> samplers_;
  data::CollateOptions collate_;
  // The step in progress: per adapter the summed NLL and the learned tokens.
  std::vector<double> nll_, tokens_;
  double start_ = steady_clock_seconds();
  double world_start_ = 0, world_seconds_ = 0;
};

AgentStage::AgentStage(const AgentRecipe& recipe, TrainingLoop& loop) : r_(recipe), loop_(loop) {
  for (const auto& [user, weights] : r_.users)
    users_.push_back(user);
  load_models();
  build_world();
  build_adapters();
}

void AgentStage::load_models() {
  large_tokenizer_ =
      Tokenizer::from_dir(r_.large.tokenizer.empty() ? r_.tokenizer : r_.large.tokenizer);
  small_tokenizer_ =
      Tokenizer::from_dir(r_.small.tokenizer.empty() ? r_.tokenizer : r_.small.tokenizer);
  // fp64 runs everything in float64 (tests compare runs in it); otherwise float32 weights.
  const auto dtype = r_.train.precision == Precision::kFp64 ? at::kDouble : at::kFloat;
  large_ = load_pretrained(r_.large.path, dtype);
  large_->eval();
  small_ = load_pretrained(r_.small.path, dtype);
  for (const auto& [key, model, tokenizer] :
       {std::tuple<std::string, CausalLM*, const Tokenizer*>{"large", &large_, &*large_tokenizer_},
        {"small", &small_, &*small_tokenizer_}})
    if (tokenizer->vocab_size() > (*model)->vocab_size())
      throw Error("agent", key + ".path: the model has " + std::to_string((*model)->vocab_size()) +
                               " tokens but its tokenizer has " +
                               std::to_string(tokenizer->vocab_size()) + " (" + key +
                               ".tokenizer, or tokenizer)");
  loop_.log() << "[agent] M_L " << r_.large.path.string() << ": " << large_->model_type() << ", "
              << large_->num_layers() << " layers, width " << large_->hidden_size() << "\n"
              << "[agent] M_S " << r_.small.path.string() << ": " << small_->model_type() << ", "
              << small_->num_layers() << " layers, width " << small_->hidden_size() << "\n";
}

GenerationConfig AgentStage::sampling(int64_t seed) const {
  GenerationConfig c;
  c.max_new_tokens = r_.generate.max_new_tokens;
  c.temperature = r_.generate.temperature;
  c.top_k = r_.generate.top_k;
  c.top_p = r_.generate.top_p;
  c.seed = static_cast<uint64_t>(seed);
  return c;
}

GenerationConfig AgentStage::greedy() const {
  GenerationConfig c;
  c.max_new_tokens = r_.steps.max_new_tokens;
  c.temperature = 0;
  return c;
}

std::vector<std::string> AgentStage::large_steps(const std::vector<std::string>& prompts) {
  std::vector<std::string> out;
  for (auto& a : generate_answers(*large_, *large_tokenizer_, r_.data.prompt_template, prompts,
                                  std::vector<std::string>(prompts.size()), greedy(), 1))
    out.push_back(trimmed(a.text));
  return out;
}

// Steps 2 and 3: the demonstrations, and the intents, zero-shot answers and rules of each.
void AgentStage::build_world() {
  world_start_ = steady_clock_seconds();
  const auto prompts_file = read_prompts_jsonl(r_.data.prompts);
  if (!r_.data.demonstrations.empty()) {
    // Real demonstrations: the users' own answers, in file order.
    for (auto& d : read_demonstrations(r_.data.demonstrations, users_))
      demos_[d.user].push_back(std::move(d));
    std::vector<AgentDemo> flat;
    for (const auto& user : users_)
      flat.insert(flat.end(), demos_[user].begin(), demos_[user].end());
    tasks_ = split_demonstrated_tasks(flat, prompts_file, r_.data.eval_prompts,
                                      static_cast<uint64_t>(r_.seed));
    loop_.log() << "[agent] " << flat.size() << " demonstrations of " << tasks_.train.size()
                << " tasks from " << r_.data.demonstrations.string() << ", " << tasks_.eval.size()
                << " tasks held out\n";
  } else {
    tasks_ = split_agent_tasks(prompts_file, r_.data.train_prompts, r_.data.eval_prompts,
                               static_cast<uint64_t>(r_.seed));
    sample_demonstrations();
  }
  derive_rules();
}

// Each user's demonstration of a task: the valid candidate its oracle ranks best among
// data.candidates samples of M_L (candidates.jsonl keeps them all).
void AgentStage::sample_demonstrations() {
  const auto& train = tasks_.train;
  const int64_t K = r_.data.candidates;
  loop_.log() << "[agent] " << train.size() << " training tasks, " << tasks_.eval.size()
              << " held out; M_L samples " << K << " answers to each training task\n";
  const auto candidates =
      generate_answers(*large_, *large_tokenizer_, r_.data.prompt_template, train,
                       std::vector<std::string>(train.size()), sampling(r_.generate.seed), K);

  // Each user's demonstration of a task: the valid candidate its oracle ranks best.
  for (const auto& user : users_) {
    auto judge = judges::make_oracle_judge(r_.users.at(user));
    std::vector<judges::Candidates> groups;
    for (size_t i = 0; i < train.size(); ++i) {
      judges::Candidates g{train[i], {}};
      for (int64_t k = 0; k < K; ++k) {
        const Answer& a = candidates[i * K + k];
        if (!is_invalid_answer(a.text, a.truncated)) g.completions.push_back(a.text);
      }
      groups.push_back(std::move(g));
    }
    const auto rankings = judge->rank(groups);
    for (size_t i = 0; i < train.size(); ++i) {
      if (groups[i].completions.empty()) {
        loop_.log() << "[agent] " << user << ": no valid answer to \"" << train[i]
                    << "\"; no demonstration\n";
        continue;
      }
      AgentDemo d;
      d.user = user;
      d.prompt = train[i];
      d.completion = groups[i].completions[rankings[i].order.front()];
      demos_[user].push_back(std::move(d));
    }
  }
  if (loop_.rank0()) {
    std::string lines;
    for (size_t i = 0; i < train.size(); ++i) {
      nlohmann::json line = {{"prompt", train[i]}, {"answers", nlohmann::json::array()}};
      for (int64_t k = 0; k < K; ++k)
        line["answers"].push_back(
            {{"text", candidates[i * K + k].text}, {"truncated", candidates[i * K + k].truncated}});
      lines += line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
    write_file_atomic(r_.output_dir / "candidates.jsonl", lines);
  }
}

// For each demonstration: its intent, M_L's zero-shot answer to it, and both kinds of rules.
void AgentStage::derive_rules() {
  // Intents (greedy M_L, or the task), then the zero-shot answers of the distinct intents.
  std::vector<AgentDemo*> all;
  for (auto& [user, list] : demos_)
    for (auto& d : list)
      all.push_back(&d);
  if (r_.steps.intent.empty()) {
    for (auto* d : all)
      d->intent = d->prompt;
  } else {
    std::vector<std::string> prompts;
    for (auto* d : all)
      prompts.push_back(fill_template("steps.intent", r_.steps.intent,
                                      {{"prompt", d->prompt}, {"completion", d->completion}}));
    const auto intents = large_steps(prompts);
    for (size_t i = 0; i < all.size(); ++i)
      all[i]->intent = intents[i];
  }
  std::map<std::string, std::string> zero_shot;  // intent -> M_L's answer
  for (auto* d : all)
    zero_shot[d->intent];
  std::vector<std::string> intents, prompts;
  for (const auto& [intent, unused] : zero_shot) {
    intents.push_back(intent);
    prompts.push_back(fill_template("steps.zero_shot", r_.steps.zero_shot, {{"intent", intent}}));
  }
  GenerationConfig zero = greedy();
  zero.max_new_tokens = r_.generate.max_new_tokens;
  const auto answers = generate_answers(*large_, *large_tokenizer_, r_.data.prompt_template,
                                        prompts, std::vector<std::string>(prompts.size()), zero, 1);
  for (size_t i = 0; i < intents.size(); ++i)
    zero_shot[intents[i]] = answers[i].text;
  for (auto* d : all)
    d->zero_shot = zero_shot.at(d->intent);

  // The rules: the rule writer, or M_L with the recipe's templates.
  if (r_.steps.rules.empty()) {
    for (auto* d : all)
      d->rules = contrast_rules(d->completion, d->zero_shot);
  } else {
    std::vector<std::string> p;
    for (auto* d : all)
      p.push_back(fill_template(
          "steps.rules", r_.steps.rules,
          {{"intent", d->intent}, {"zero_shot", d->zero_shot}, {"completion", d->completion}}));
    const auto out = large_steps(p);
    for (size_t i = 0; i < all.size(); ++i)
      all[i]->rules = out[i];
  }
  if (r_.steps.no_baseline_rules.empty()) {
    for (auto* d : all)
      d->no_baseline_rules = no_baseline_rules(d->completion);
  } else {
    std::vector<std::string> p;
    for (auto* d : all)
      p.push_back(fill_template("steps.no_baseline_rules", r_.steps.no_baseline_rules,
                                {{"intent", d->intent}, {"completion", d->completion}}));
    const auto out = large_steps(p);
    for (size_t i = 0; i < all.size(); ++i)
      all[i]->no_baseline_rules = out[i];
  }
  std::vector<AgentDemo> flat;
  for (auto* d : all)
    flat.push_back(*d);
  if (loop_.rank0()) write_world_jsonl(r_.output_dir / "world.jsonl", flat);
  world_seconds_ = steady_clock_seconds() - world_start_;
  for (const auto& user : users_) {
    const auto& list = demos_[user];
    int64_t with_rules = 0;
    for (const auto& d : list)
      with_rules += !d.rules.empty();
    loop_.log() << "[agent] " << user << ": " << list.size() << " demonstrations, " << with_rules
                << " with rules; e.g. \"" << (list.empty() ? "" : list.front().prompt) << "\" ->"
                << (list.empty() ? "" : list.front().completion) << "\n";
  }
  loop_.log() << "[agent] world: " << flat.size() << " demonstrations -> "
              << (r_.output_dir / "world.jsonl").string() << " (" << std::fixed
              << std::setprecision(1) << world_seconds_ << " s)\n"
              << std::defaultfloat;
}

// Step 4's set-up: one adapter per (user, kind) in one bank on M_S, their examples as token rows.
void AgentStage::build_adapters() {
  std::vector<AgentDemo> flat;
  for (const auto& user : users_)
    for (const auto& d : demos_[user])
      flat.push_back(d);
  const auto sets = agent_training_sets(r_, flat, r_.curve_sizes());
  for (const auto& [name, examples] : sets)
    adapters_.push_back(name);
  lora_ = LoraConfig{r_.lora.rank, r_.lora.alpha, r_.lora.dropout, r_.lora.rslora, r_.lora.targets};
  bank_ = std::make_unique<AdapterBank>(*small_, lora_, adapters_);
  for (const auto& path : bank_->module_paths())
    lm_head_adapted_ = lm_head_adapted_ || path == "lm_head" ||
                       (path.size() > 8 && path.compare(path.size() - 8, 8, ".lm_head") == 0);
  for (const auto& name : adapters_) {
    bank_->init_user(name, adapter_seed(static_cast<uint64_t>(r_.seed), name));
    std::vector<std::vector<int32_t>> rows;
    std::vector<std::vector<bool>> learned;
    for (const auto& ex : sets.at(name)) {
      auto ids = encode_sft_field(*small_tokenizer_, r_.data.prompt_template, "prompt", ex.prompt);
      std::vector<bool> mask(ids.size(), false);
      const auto response =
          encode_sft_field(*small_tokenizer_, r_.data.prompt_template, "response", ex.response);
      ids.insert(ids.end(), response.begin(), response.end());
      mask.insert(mask.end(), response.size(), true);
      rows.push_back(std::move(ids));
      learned.push_back(std::move(mask));
    }
    rows_.push_back(std::move(rows));
    learned_.push_back(std::move(learned));
    samplers_.emplace_back(static_cast<int64_t>(rows_.back().size()),
                           adapter_seed(static_cast<uint64_t>(r_.seed), name + "/order"));
  }
  collate_.max_length = std::min(r_.data.max_length, small_->max_positions());
  collate_.eos_id = small_tokenizer_->eos_id();
  collate_.append_eos = true;  // an agent learns to stop after its rules

  std::vector<TrainableParameter> params;
  int64_t trainable = 0;
  for (const auto& item : small_->named_parameters())
    if (item.value().requires_grad()) {
      params.push_back({item.key(), item.value(), decays_by_default(item.value())});
      trainable += item.value().numel();
    }
  loop_.set_optimizer(
      Optimizer::replicated(std::move(params),
                            AdamWConfig{r_.optimizer.beta1, r_.optimizer.beta2, r_.optimizer.eps,
                                        r_.optimizer.weight_decay},
                            loop_.comm()));
  loop_.log() << "[agent] " << adapters_.size() << " LoRA adapters on M_S (r=" << lora_.rank << ", "
              << trainable / static_cast<int64_t>(adapters_.size())
              << " parameters each), trained together: " << r_.train.examples_per_adapter
              << " examples of each per step\n";
}

// Every adapter's examples_per_adapter rows in passes of kRowsPerPass; each adapter's loss is the
// mean over its learned tokens in the step, and the total their sum, so each adapter's slice of
// the bank gets the gradient of its own mean loss (as N separate runs would).
void AgentStage::forward_backward(int64_t step, Optimizer& optimizer) {
  const size_t A = adapters_.size();
  std::vector<std::string> row_adapter;
  std::vector<std::vector<int32_t>> rows;
  std::vector<std::vector<bool>> learned;
  std::vector<int64_t> row_index;  // adapter index of each row
  nll_.assign(A, 0);
  tokens_.assign(A, 0);
  for (size_t a = 0; a < A; ++a)
    for (int64_t i : samplers_[a].next_batch(r_.train.examples_per_adapter)) {
      rows.push_back(rows_[a][i]);
      learned.push_back(learned_[a][i]);
      row_adapter.push_back(adapters_[a]);
      row_index.push_back(static_cast<int64_t>(a));
    }
  // Learned tokens per adapter over the whole step (the EOS after each response included, as the
  // collator appends it; truncation can only drop some, counted below from the batches).
  std::vector<data::SftBatch> batches;
  for (size_t start = 0; start < rows.size(); start += kRowsPerPass) {
    const size_t end = std::min(rows.size(), start + kRowsPerPass);
    batches.push_back(data::collate_rows(
        std::vector<std::vector<int32_t>>(rows.begin() + start, rows.begin() + end),
        std::vector<std::vector<bool>>(learned.begin() + start, learned.begin() + end), collate_));
    const auto counts = (batches.back().labels.slice(1, 1) != data::kIgnoreIndex).sum(1);
    for (size_t b = start; b < end; ++b)
      tokens_[row_index[b]] += counts[b - start].item<double>();
  }
  for (size_t p = 0; p < batches.size(); ++p) {
    const size_t start = p * kRowsPerPass;
    const auto& batch = batches[p];
    const int64_t B = batch.input_ids.size(0);
    const std::vector<std::string> who(row_adapter.begin() + start,
                                       row_adapter.begin() + start + B);
    at::Tensor loss;
    {
      const AdapterRoute route(*bank_, who, at::kCPU);
      AutocastScope autocast(r_.train.precision == Precision::kBf16Autocast, at::kCPU);
      // Position t predicts labels[t + 1]. The vocabulary projection and its softmax, most of
      // a small model's work, run only at the positions that predict a learned token (the
      // prompts and the padding learn nothing): [1, N, C] when the output layer has no
      // adapter; with one, every row keeps its own adapter, from the first learned position on.
      const int64_t T = batch.input_ids.size(1);
      const auto labels = batch.labels.slice(1, 1);  // [B, T - 1]
      const auto learned = labels != data::kIgnoreIndex;
      const auto hidden =
          small_->hidden_states(batch.input_ids, batch.attention_mask).slice(1, 0, T - 1);
      at::Tensor row_nll;  // [B]
      if (!lm_head_adapted_) {
        const auto flat = learned.reshape({-1}).nonzero().squeeze(1);  // [N]
        const auto logits =
            small_
                ->lm_logits(hidden.reshape({-1, hidden.size(2)}).index_select(0, flat).unsqueeze(0))
                .squeeze(0)
                .to(loss_dtype(hidden));  // [N, V]
        const auto nll = at::cross_entropy_loss(logits, labels.reshape({-1}).index_select(0, flat),
                                                {}, at::Reduction::None, data::kIgnoreIndex);
        const auto row = flat.div(T - 1, "floor");  // each position's row
        row_nll = at::zeros({B}, nll.options()).index_add(0, row, nll);
      } else {
        const int64_t first = learned.any(0).to(at::kLong).argmax().item<int64_t>();
        const auto logits = small_->lm_logits(hidden.slice(1, first));
        const int64_t V = logits.size(2);
        row_nll = at::cross_entropy_loss(logits.reshape({-1, V}).to(loss_dtype(hidden)),
                                         labels.slice(1, first).reshape({-1}), {},
                                         at::Reduction::None, data::kIgnoreIndex)
                      .view({B, T - 1 - first})
                      .sum(1);  // the ignored positions are 0
      }
      const auto& nll = row_nll;
      std::vector<double> weights(B);
      for (int64_t b = 0; b < B; ++b) {
        const int64_t a = row_index[start + b];
        weights[b] = 1.0 / std::max(1.0, tokens_[a]);
        nll_[a] += nll[b].item<double>();
      }
      loss =
          (nll * at::tensor(weights, at::TensorOptions().dtype(at::kDouble)).to(nll.dtype())).sum();
    }
    loss.backward();
    optimizer.after_backward();
  }
}

StepResult AgentStage::step_result(int64_t step) {
  StepResult result;
  double total = 0, tokens = 0;
  for (size_t a = 0; a < adapters_.size(); ++a) {
    const double mean = nll_[a] / std::max(1.0, tokens_[a]);
    result.record["loss/" + adapters_[a]] = mean;
    total += mean;
    tokens += tokens_[a];
  }
  result.loss = total / static_cast<double>(adapters_.size());
  result.tokens = static_cast<int64_t>(tokens);
  result.record["loss"] = result.loss;
  return result;
}

void AgentStage::save_state(TrainerState& state) {
  state.extra["adapters"] = adapters_;
  nlohmann::json positions = nlohmann::json::array();
  for (const auto& s : samplers_)
    positions.push_back({s.position().epoch, s.position().index});
  state.extra["samplers"] = positions;
}

void AgentStage::check_checkpoint(const TrainerState& state, const std::string& source) {
  if (state.extra.value("adapters", nlohmann::json::array()) != nlohmann::json(adapters_))
    throw Error("agent", fs::path(source).parent_path().string() +
                             ": its adapters differ from this run's (another users table, or "
                             "other demonstrations)");
}

void AgentStage::load_state(const TrainerState& state, const std::string& source) {
  const auto& positions = state.extra.at("samplers");
  for (size_t a = 0; a < samplers_.size(); ++a)
    samplers_[a].set_position({positions[a][0].get<int64_t>(), positions[a][1].get<int64_t>()});
}

std::vector<Answer> AgentStage::large_answers(const std::vector<std::string>& prompts,
                                              const std::vector<std::string>& systems) {
  return generate_answers(*large_, *large_tokenizer_, r_.data.prompt_template, prompts, systems,
                          sampling(r_.eval.seed), r_.eval.samples);
}

std::vector<Answer> AgentStage::small_answers(const std::string& adapter,
                                              const std::vector<std::string>& prompts) {
  const AdapterRoute route(*bank_, adapter);
  return generate_answers(*small_, *small_tokenizer_, r_.data.prompt_template, prompts,
                          std::vector<std::string>(prompts.size()), sampling(r_.eval.seed),
                          r_.eval.samples);
}

std::vector<std::string> AgentStage::agent_rules(const std::string& adapter) {
  std::vector<std::string> prompts;
  for (const auto& task : tasks_.eval)
    prompts.push_back(
        fill_template("steps.agent_prompt", r_.steps.agent_prompt, {{"intent", task}}));
  const AdapterRoute route(*bank_, adapter);
  std::vector<std::string> out;
  for (auto& a : generate_answers(*small_, *small_tokenizer_, r_.data.prompt_template, prompts,
                                  std::vector<std::string>(prompts.size()), greedy(), 1))
    out.push_back(trimmed(a.text));
  return out;
}

std::vector<Answer> AgentStage::steered_answers(const std::string& adapter,
                                                std::vector<std::string>* rules_out) {
  const auto rules = agent_rules(adapter);
  std::vector<std::string> prompts, systems;
  for (size_t i = 0; i < tasks_.eval.size(); ++i) {
    const std::map<std::string, std::string> values = {{"intent", tasks_.eval[i]},
                                                       {"rules", rules[i]}};
    prompts.push_back(fill_template("steps.inference", r_.steps.inference, values));
    systems.push_back(
        fill_template("steps.inference_system", r_.steps.inference_system, {{"rules", rules[i]}}));
  }
  if (rules_out) *rules_out = rules;
  return large_answers(prompts, systems);
}

// Adapter answers against baseline answers of the same tasks and seeds.
std::vector<Comparison> compare(const std::vector<std::string>& tasks, int64_t samples,
                                const std::vector<Answer>& method,
                                const std::vector<Answer>& baseline) {
  std::vector<Comparison> out;
  for (size_t i = 0; i < method.size(); ++i) {
    Comparison c;
    c.prompt = tasks[i / static_cast<size_t>(samples)];
    c.adapter = method[i].text;
    c.base = baseline[i].text;
    c.adapter_invalid = is_invalid_answer(method[i].text, method[i].truncated);
    c.base_invalid = is_invalid_answer(baseline[i].text, baseline[i].truncated);
    out.push_back(std::move(c));
  }
  return out;
}

std::string percent(double rate) {
  if (std::isnan(rate)) return "n/a";
  std::ostringstream s;
  s << std::fixed << std::setprecision(1) << 100.0 * rate;
  return s.str();
}

// Step 5: the agents and the baselines on the held-out tasks, judged by each user's oracle.
void AgentStage::finish(int64_t step) {
  const double eval_start = steady_clock_seconds();
  small_->eval();
  const auto& eval = tasks_.eval;
  const int64_t S = r_.eval.samples;
  std::vector<std::string> zero_prompts;
  for (const auto& task : eval)
    zero_prompts.push_back(
        fill_template("steps.zero_shot", r_.steps.zero_shot, {{"intent", task}}));
  const std::vector<std::string> no_system(eval.size());
  loop_.log() << "[agent] evaluation: " << eval.size() << " held-out tasks x " << S
              << " answers per method\n";

  std::map<std::string, std::vector<Answer>> answers;  // method key -> answers
  answers["large"] = large_answers(zero_prompts, no_system);
  answers["small"] = small_answers("", zero_prompts);             // "": M_S without an adapter
  std::map<std::string, std::vector<std::string>> rules_written;  // adapter -> per task
  for (const auto& user : users_) {
    answers[user + "@few_shot"] = large_answers(
        zero_prompts,
        std::vector<std::string>(eval.size(), few_shot_system_text(r_, demos_[user])));
    answers[user + kNaiveSuffix] = small_answers(user + kNaiveSuffix, zero_prompts);
    answers[user] = steered_answers(user, &rules_written[user]);
    answers[user + kNoBaselineSuffix] =
        steered_answers(user + kNoBaselineSuffix, &rules_written[user + kNoBaselineSuffix]);
    for (int64_t k : r_.curve_sizes()) {
      answers[curve_adapter(user, true, k)] = steered_answers(curve_adapter(user, true, k));
      answers[curve_adapter(user, false, k)] =
          small_answers(curve_adapter(user, false, k), zero_prompts);
    }
    loop_.log() << "[agent] " << user << ": answers of every method sampled (" << std::fixed
                << std::setprecision(0) << steady_clock_seconds() - eval_start << " s)\n"
                << std::defaultfloat;
  }

  // The win rates: each user's agent against each baseline, judged by the user's oracle.
  nlohmann::json summary;
  summary["users"] = users_;
  nlohmann::json win = nlohmann::json::object(), invalid = nlohmann::json::object();
  std::map<std::string, double> mean;
  std::map<std::string, std::vector<std::vector<WinRate>>> matrix_rates;
  for (const auto& user : users_) {
    auto judge = judges::make_oracle_judge(r_.users.at(user));
    std::vector<std::vector<Comparison>> comparisons;
    for (const auto& [key, label] : baselines()) {
      const std::string name = key == "small" || key == "large" ? key
                               : key == "few_shot"              ? user + "@few_shot"
                               : key == "naive"                 ? user + kNaiveSuffix
                                                                : user + kNoBaselineSuffix;
      comparisons.push_back(compare(eval, S, answers.at(user), answers.at(name)));
    }
    // The learning curve, each against M_L zero-shot.
    std::vector<std::string> curve;
    for (int64_t k : r_.curve_sizes()) {
      curve.push_back(curve_adapter(user, true, k));
      curve.push_back(curve_adapter(user, false, k));
    }
    curve.push_back(user);
    curve.push_back(user + kNaiveSuffix);
    for (const auto& name : curve)
      comparisons.push_back(compare(eval, S, answers.at(name), answers.at("large")));
    // The cross-user matrix row: every user's agent judged by this user, against M_L.
    for (const auto& other : users_)
      comparisons.push_back(compare(eval, S, answers.at(other), answers.at("large")));
    const auto rates = win_rates(comparisons, *judge);
    size_t at = 0;
    for (const auto& [key, label] : baselines()) {
      win[user][key] = rates[at].rate();
      mean[key] += rates[at].rate() / static_cast<double>(users_.size());
      ++at;
    }
    nlohmann::json curves = nlohmann::json::object();
    for (int64_t k : r_.curve_sizes()) {
      curves["rules"][std::to_string(k)] = rates[at++].rate();
      curves["naive"][std::to_string(k)] = rates[at++].rate();
    }
    const std::string all = std::to_string(demos_[user].size());
    curves["rules"][all] = rates[at++].rate();
    curves["naive"][all] = rates[at++].rate();
    summary["curves"][user] = curves;
    for (const auto& other : users_)
      summary["cross_user"]["win_rate"][user][other] = rates[at++].rate();
    int64_t bad = 0;
    for (const auto& a : answers.at(user))
      bad += is_invalid_answer(a.text, a.truncated);
    invalid[user] = bad;
  }
  summary["win_rates"] = win;
  summary["win_rates_mean"] = mean;
  summary["baselines"] = nlohmann::json::object();
  summary["baseline_order"] = nlohmann::json::array();  // the objects' keys come back sorted
  for (const auto& [key, label] : baselines()) {
    summary["baselines"][key] = label;
    summary["baseline_order"].push_back(key);
  }
  summary["invalid_agent_answers"] = invalid;
  summary["answers_per_user"] = static_cast<int64_t>(eval.size()) * S;
  summary["judged_by"] =
      "each user's own oracle mixture (users); it picked the demonstrations "
      "of every method alike, and judged nothing during training";

  // Is each user's own agent the best on that user (the diagonal its row's maximum)?
  bool diagonal = true;
  for (const auto& user : users_) {
    const auto& row = summary["cross_user"]["win_rate"][user];
    const double own = row[user].get<double>();
    for (const auto& other : users_)
      if (other != user && row[other].get<double>() >= own) diagonal = false;
  }
  summary["cross_user"]["rows"] = "users (judges)";
  summary["cross_user"]["columns"] = "agents (each user's rules steering M_L), against M_L alone";
  summary["cross_user"]["diagonal_is_row_max"] = diagonal;

  // The bundled rule writer's rules can be checked: do M_L's answers follow the agent's rules?
  if (r_.steps.rules.empty()) {
    for (const auto& user : users_) {
      int64_t followed = 0, parsed = 0, malformed = 0;
      const auto& rules = rules_written.at(user);
      const auto& list = answers.at(user);
      for (size_t i = 0; i < list.size(); ++i) {
        try {
          const bool ok = satisfies_rules(list[i].text, rules[i / static_cast<size_t>(S)]);
          ++parsed;
          followed += ok;
        } catch (const Error&) {
          ++malformed;
        }
      }
      summary["rules_followed"][user] = {
          {"followed", followed}, {"checked", parsed}, {"malformed_rule_sets", malformed}};
    }
  }
  // What each agent writes for the first held-out tasks (interpretability).
  for (const auto& [adapter, rules] : rules_written)
    for (size_t i = 0; i < rules.size() && i < 3; ++i)
      summary["rules_examples"][adapter].push_back({{"task", eval[i]}, {"rules", rules[i]}});
  summary["wall_seconds"] = steady_clock_seconds() - start_;
  summary["seconds"] = {{"world", world_seconds_},
                        {"evaluation", steady_clock_seconds() - eval_start},
                        {"total", steady_clock_seconds() - start_}};

  // export/<adapter>/: every adapter as a PEFT adapter of M_S.
  const bool fan_in_fan_out = small_->linear_layout() == WeightLayout::kConv1D;
  write_dir_atomic(r_.output_dir / "export", [&](const fs::path& tmp) {
    for (const auto& name : adapters_)
      save_user_peft_adapter(tmp / name, *bank_, name, lora_, fs::absolute(r_.small.path).string(),
                             fan_in_fan_out);
  });

  // eval_samples.jsonl: every answer that was judged, with its method.
  std::string lines;
  for (const auto& [method, list] : answers)
    for (size_t i = 0; i < list.size(); ++i)
      lines += nlohmann::json({{"method", method},
                               {"task", eval[i / static_cast<size_t>(S)]},
                               {"sample", static_cast<int64_t>(i) % S},
                               {"answer", list[i].text},
                               {"truncated", list[i].truncated}})
                   .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
               "\n";
  write_file_atomic(r_.output_dir / "eval_samples.jsonl", lines);

  // table.md: the win rates, and the cross-user matrix.
  std::ostringstream t;
  t << "Win rates (%) of each user's preference agent against the seed's baselines, judged by "
       "the user's own oracle; "
    << eval.size() << " held-out tasks x " << S << " answers, ties half, an empty or cut-off "
    << "answer never wins.\n\n";
  std::vector<std::string> baseline_columns;
  for (const auto& [key, label] : baselines())
    baseline_columns.push_back("vs " + label);
  write_markdown_header(t, "user", baseline_columns);
  for (const auto& user : users_) {
    t << "| " << user << " |";
    for (const auto& [key, label] : baselines())
      t << " " << percent(win[user][key].get<double>()) << " |";
    t << "\n";
  }
  t << "| **mean** |";
  for (const auto& [key, label] : baselines())
    t << " **" << percent(mean[key]) << "** |";
  t << "\n\nCross-user matrix: win rate (%) against M_L alone of the answers each agent's rules "
       "steer (columns), judged by each user (rows). Each agent best on its own user: "
    << (diagonal ? "yes" : "no") << ".\n\n";
  write_markdown_header(t, "user \\ agent", users_);
  for (const auto& user : users_) {
    t << "| " << user << " |";
    for (const auto& other : users_) {
      const std::string cell =
          percent(summary["cross_user"]["win_rate"][user][other].get<double>());
      t << " " << (other == user ? "**" + cell + "**" : cell) << " |";
    }
    t << "\n";
  }
  if (loop_.rank0()) {
    write_file_atomic(r_.output_dir / "table.md", t.str());
    write_file_atomic(r_.output_dir / "summary.json", summary.dump(2) + "\n");
  }
  std::cout << "\n"
            << t.str() << "\nrun directory: " << r_.output_dir.string()
            << " (summary.json, table.md, world.jsonl, eval_samples.jsonl, metrics.jsonl, "
               "export/)\n"
            << std::flush;
}

}  // namespace

void run_agent_stage(const AgentRecipe& recipe, const AgentStepRunner& run_step) {
  // The bundled world's models: each trained once by its own SFT recipe, shared by every seed.
  for (const auto& [name, model] :
       {std::pair<std::string, const AgentModelSection&>{"large", recipe.large},
        {"small", recipe.small}}) {
    if (fs::is_regular_file(model.path / "config.json")) continue;
    if (model.recipe.empty())
      throw Error("recipe", name + ".path: " + model.path.string() + " has no config.json and " +
                                name + ".recipe is empty");
    if (model.path.filename() != "export")
      throw Error("recipe", name + ".path: " + model.path.string() +
                                " must end in /export to be "
                                "trained by " +
                                name + ".recipe (the SFT stage exports there)");
    run_step(name, model.recipe, {"output_dir=" + model.path.parent_path().string()});
  }
  run_stage<AgentStage>(recipe, loop_config(recipe), dist::world());
}

}  // namespace tailor
