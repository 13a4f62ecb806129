// The SFT stage, top to bottom: setup() builds everything from the validated recipe, resume()
// restores a checkpoint, train() runs optimizer steps (each = grad_accum micro-batches), and
// finish() writes the last checkpoint, evaluates and exports.
#include "trainer/sft_stage.h"

#include <ATen/autocast_mode.h>

#include <chrono>
#include <cmath>
#include <iostream>
#include <numeric>

#include "common/atomic_file.h"
#include "common/error.h"
#include "data/epoch_sampler.h"
#include "data/sft_dataset.h"
#include "models/gpt2.h"
#include "models/hf_checkpoint.h"
#include "models/lora.h"
#include "models/pretrained.h"
#include "models/tokenizer.h"
#include "trainer/adamw.h"
#include "trainer/checkpoint.h"
#include "trainer/grad_clip.h"
#include "trainer/lm_loss.h"
#include "trainer/lr_schedule.h"
#include "trainer/metrics.h"
#include "trainer/model_checkpoint.h"
#include "trainer/rng_state.h"

namespace tailor {
namespace fs = std::filesystem;

namespace {

// bf16_autocast: float32 weights, CPU autocast runs matmuls in bfloat16. Scoped so that
// evaluation and export outside the guard see plain float32.
class AutocastGuard {
 public:
  explicit AutocastGuard(bool enabled) : enabled_(enabled) {
    if (!enabled_) return;
    at::autocast::set_cpu_enabled(true);
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  }
  ~AutocastGuard() {
    if (!enabled_) return;
    at::autocast::set_cpu_enabled(false);
    at::autocast::clear_cache();
  }

 private:
  bool enabled_;
};

class SftStage {
 public:
  explicit SftStage(const SftRecipe& recipe) : r_(recipe) {}

  void setup();
  void resume();
  void train();
  void finish();

 private:
  GPT2Config model_config() const;
  std::vector<data::SftBatch> next_step_batches();
  double evaluate();
  void save_checkpoint();
  bool stores_base() const { return !r_.lora.enabled || r_.model.init == ModelInit::kRandom; }

  const SftRecipe& r_;
  fs::path run_dir_;
  std::optional<Tokenizer> tokenizer_;
  GPT2LMHead model_{nullptr};
  ModelProvenance provenance_;
  std::optional<data::SftDataset> train_data_, eval_data_;
  std::vector<int64_t> train_indices_, eval_indices_;  // into the datasets above
  std::optional<data::EpochSampler> sampler_;
  data::CollateOptions collate_;
  std::optional<AdamW> optimizer_;
  std::optional<LrSchedule> schedule_;
  std::optional<MetricsWriter> metrics_;
  int64_t step_ = 0;
  int64_t last_checkpoint_step_ = -1;
};

GPT2Config SftStage::model_config() const {
  GPT2Config config;
  if (r_.model.init == ModelInit::kPretrained) {
    const fs::path path = r_.model.path / "config.json";
    config = GPT2Config::from_json(nlohmann::json::parse(read_file(path)), path.string());
  } else {
    config = GPT2Config::preset(r_.model.preset);
    if (r_.model.n_layer > 0) config.n_layer = r_.model.n_layer;
    if (r_.model.n_head > 0) config.n_head = r_.model.n_head;
    if (r_.model.n_embd > 0) config.n_embd = r_.model.n_embd;
    if (r_.model.n_positions > 0) config.n_positions = r_.model.n_positions;
  }
  config.resid_pdrop = config.embd_pdrop = config.attn_pdrop = r_.model.dropout;
  config.validate("recipe model section");
  return config;
}

void SftStage::setup() {
  run_dir_ = r_.output_dir;
  fs::create_directories(run_dir_);  // `tailor run` already wrote run_dir/recipe.yaml
  torch::manual_seed(static_cast<uint64_t>(r_.seed));

  tokenizer_ = Tokenizer::from_dir(r_.tokenizer);

  // Model: HF init from the seed, or pretrained weights; then LoRA (its A init also from the seed).
  const GPT2Config config = model_config();
  if (tokenizer_->vocab_size() > config.vocab_size)
    throw Error("sft", "tokenizer " + r_.tokenizer.string() + " has " +
                           std::to_string(tokenizer_->vocab_size()) +
                           " tokens but the model only " + std::to_string(config.vocab_size));
  const auto dtype = r_.train.precision == Precision::kBf16 ? at::kBFloat16 : at::kFloat;
  if (r_.model.init == ModelInit::kPretrained) {
    model_ = GPT2LMHead(config, /*init_weights=*/false);
    model_->load_hf_state_dict(hf::load_state_dict(r_.model.path), r_.model.path.string());
  } else {
    model_ = GPT2LMHead(config);
  }
  model_->to(dtype);
  provenance_.config = config;
  provenance_.dtype = dtype == at::kBFloat16 ? "bfloat16" : "float32";
  provenance_.tokenizer = fs::absolute(r_.tokenizer);
  if (!stores_base()) provenance_.base_model = fs::absolute(r_.model.path);
  if (r_.lora.enabled) {
    LoraConfig lora{r_.lora.rank, r_.lora.alpha, r_.lora.dropout, r_.lora.rslora, r_.lora.targets};
    const auto wrapped = apply_lora(*model_, lora);
    provenance_.lora = lora;
    std::cerr << "[sft] LoRA r=" << lora.rank << " on " << wrapped.size() << " modules\n";
  }
  int64_t n_params = 0, n_trainable = 0;
  for (const auto& p : model_->parameters()) {
    n_params += p.numel();
    if (p.requires_grad()) n_trainable += p.numel();
  }
  std::cerr << "[sft] model: " << config.n_layer << " layers, n_embd " << config.n_embd << ", "
            << n_params << " parameters, " << n_trainable << " trainable (" << provenance_.dtype
            << ")\n";

  // Data: a .jsonl is tokenized in memory, an .h5 store is read as imported.
  const auto encode = [this](const std::string& text) { return tokenizer_->encode(text); };
  train_data_ = data::SftDataset::load(r_.data.train, encode);
  const bool want_text = r_.data.format == DataFormat::kText;
  if (want_text != (train_data_->kind() == data::StoreKind::text))
    throw Error("recipe", "data.format is " + to_string(r_.data.format) + " but " +
                              r_.data.train.string() + " holds " +
                              data::kind_name(train_data_->kind()) + " records");
  train_indices_.resize(train_data_->size());
  std::iota(train_indices_.begin(), train_indices_.end(), 0);
  if (!r_.data.eval.empty()) {
    eval_data_ = data::SftDataset::load(r_.data.eval, encode);
    eval_indices_.resize(eval_data_->size());
    std::iota(eval_indices_.begin(), eval_indices_.end(), 0);
  } else if (r_.data.eval_fraction > 0) {
    // Hold out a seeded random subset of train; the rest is trained on.
    data::EpochSampler split(train_data_->size(), static_cast<uint64_t>(r_.seed) ^ 0x5eedULL);
    auto order = split.permutation(0);
    const auto n_eval = std::max<int64_t>(1, std::llround(r_.data.eval_fraction * order.size()));
    eval_indices_.assign(order.begin(), order.begin() + n_eval);
    train_indices_.assign(order.begin() + n_eval, order.end());
    std::sort(train_indices_.begin(), train_indices_.end());
    std::sort(eval_indices_.begin(), eval_indices_.end());
  }
  if (train_indices_.empty()) throw Error("sft", r_.data.train.string() + ": no training examples");
  sampler_.emplace(static_cast<int64_t>(train_indices_.size()), static_cast<uint64_t>(r_.seed));
  collate_.max_length = std::min(r_.data.max_length, config.n_positions);
  collate_.eos_id = tokenizer_->eos_id();
  collate_.append_eos = true;  // learn to stop

  // Optimizer over the trainable parameters; no decay on 1-D tensors.
  optimizer_.emplace(AdamWConfig{r_.optimizer.beta1, r_.optimizer.beta2, r_.optimizer.eps,
                                 r_.optimizer.weight_decay});
  for (const auto& item : model_->named_parameters()) {
    if (item.value().requires_grad())
      optimizer_->add_param(item.key(), item.value(), decays_by_default(item.value()));
  }
  ScheduleConfig schedule;
  schedule.type = r_.schedule.type;
  schedule.warmup_steps = std::min(r_.schedule.warmup_steps, r_.train.max_steps);
  schedule.total_steps = r_.train.max_steps;
  schedule.min_lr_ratio = r_.schedule.min_lr_ratio;
  schedule.base_lr = r_.optimizer.lr;
  schedule_.emplace(schedule);
  metrics_.emplace(run_dir_ / "metrics.jsonl");
}

void SftStage::resume() {
  if (!r_.train.resume) return;
  auto latest = latest_checkpoint(run_dir_);
  if (!latest) {
    std::cerr << "[sft] resume: no checkpoint in " << run_dir_ << ", starting from step 0\n";
    return;
  }
  Checkpoint ckpt = load_checkpoint(*latest);
  auto params = model_->named_parameters();
  for (const auto& [name, tensor] : ckpt.model) {
    auto* param = params.find(name);
    if (!param)
      throw Error("sft", latest->string() + ": checkpoint tensor " + name + " is not in the model");
    at::NoGradGuard no_grad;
    param->copy_(tensor);
  }
  optimizer_->import_state(ckpt.optimizer);
  step_ = ckpt.state.step;
  sampler_->set_position({ckpt.state.epoch, ckpt.state.sample_position});
  restore_torch_rng_states(ckpt.state.rng);
  metrics_->truncate_after(step_);
  last_checkpoint_step_ = step_;
  std::cerr << "[sft] resumed from " << latest->string() << " at step " << step_ << "\n";
}

std::vector<data::SftBatch> SftStage::next_step_batches() {
  std::vector<data::SftBatch> batches;
  for (int64_t i = 0; i < r_.train.grad_accum; ++i) {
    auto picks = sampler_->next_batch(r_.train.micro_batch_size);
    for (auto& p : picks)
      p = train_indices_[p];
    batches.push_back(train_data_->collate(picks, collate_));
  }
  return batches;
}

void SftStage::train() {
  model_->train();
  ProgressLine progress({r_.train.max_steps, step_, 10.0, 20}, std::cerr);
  const auto params = model_->parameters();
  std::vector<at::Tensor> trainable;
  for (const auto& p : params)
    if (p.requires_grad()) trainable.push_back(p);

  while (step_ < r_.train.max_steps) {
    // The loss of a step is the mean over every learned token of its micro-batches.
    auto batches = next_step_batches();
    int64_t loss_tokens = 0, tokens = 0;
    for (const auto& b : batches) {
      loss_tokens += data::count_loss_tokens(b);
      tokens += data::count_tokens(b);
    }
    double loss_sum = 0;
    {
      AutocastGuard autocast(r_.train.precision == Precision::kBf16Autocast);
      for (const auto& b : batches) {
        auto logits = model_->forward(b.input_ids, b.attention_mask);
        auto loss = causal_lm_loss_sum(logits, b.labels) /
                    static_cast<double>(std::max<int64_t>(1, loss_tokens));
        loss.backward();
        loss_sum += loss.item<double>();
      }
    }
    const double norm = r_.optimizer.grad_clip > 0
                            ? clip_grad_norm_(trainable, r_.optimizer.grad_clip)
                            : grad_norm(trainable);
    const double lr = schedule_->lr_at(step_);
    optimizer_->step(lr);
    optimizer_->zero_grad();
    step_ += 1;

    const bool last = step_ == r_.train.max_steps;
    const bool log = last || step_ % r_.train.log_every == 0;
    progress.update(step_, tokens, loss_sum, lr, log);
    if (log) {
      metrics_->log(step_, {{"loss", loss_sum},
                            {"lr", lr},
                            {"grad_norm", norm},
                            {"tokens", tokens},
                            {"tokens_per_s", progress.tokens_per_second()}});
    }
    if (r_.train.eval_every > 0 && step_ % r_.train.eval_every == 0 && !last) {
      const double eval_loss = evaluate();
      if (!std::isnan(eval_loss))
        std::cerr << "[sft] step " << step_ << " eval loss " << eval_loss << "\n";
    }
    if (r_.train.checkpoint_every > 0 && step_ % r_.train.checkpoint_every == 0 && !last)
      save_checkpoint();
  }
}

double SftStage::evaluate() {
  if (eval_indices_.empty()) return std::nan("");
  at::NoGradGuard no_grad;
  model_->eval();
  double nll = 0;
  int64_t count = 0;
  const int64_t B = r_.train.micro_batch_size;
  for (int64_t start = 0, batch = 0; start < static_cast<int64_t>(eval_indices_.size()) &&
                                     (r_.train.eval_batches <= 0 || batch < r_.train.eval_batches);
       start += B, ++batch) {
    const int64_t end = std::min<int64_t>(start + B, eval_indices_.size());
    std::vector<int64_t> picks(eval_indices_.begin() + start, eval_indices_.begin() + end);
    auto b =
        eval_data_ ? eval_data_->collate(picks, collate_) : train_data_->collate(picks, collate_);
    auto logits = model_->forward(b.input_ids, b.attention_mask);
    nll += causal_lm_loss_sum(logits, b.labels).item<double>();
    count += data::count_loss_tokens(b);
  }
  model_->train();
  const double loss = nll / std::max<int64_t>(1, count);
  metrics_->log(step_, {{"eval_loss", loss}, {"eval_ppl", std::exp(loss)}, {"eval_tokens", count}});
  return loss;
}

void SftStage::save_checkpoint() {
  TensorMap tensors;
  for (const auto& item : model_->named_parameters()) {
    if (stores_base() || item.value().requires_grad()) tensors[item.key()] = item.value();
  }
  TrainerState state;
  state.step = step_;
  state.epoch = sampler_->position().epoch;
  state.sample_position = sampler_->position().index;
  state.recipe_hash = recipe_hash(r_);
  state.rng = capture_torch_rng_states();
  state.extra["model"] = provenance_to_json(provenance_);
  SaveCheckpointOptions options;
  options.keep_last = static_cast<int>(r_.train.keep_checkpoints);
  const auto dir =
      tailor::save_checkpoint(run_dir_, tensors, optimizer_->export_state(), state, options);
  last_checkpoint_step_ = step_;
  std::cerr << "[sft] checkpoint " << dir.string() << "\n";
}

void SftStage::finish() {
  if (last_checkpoint_step_ != step_) save_checkpoint();
  const double eval_loss = evaluate();
  if (!std::isnan(eval_loss))
    std::cerr << "[sft] final eval loss " << eval_loss << " (ppl " << std::exp(eval_loss) << ")\n";
  std::cout << "run directory: " << run_dir_.string() << "\n"
            << "  recipe:      " << (run_dir_ / "recipe.yaml").string() << "\n"
            << "  metrics:     " << (run_dir_ / "metrics.jsonl").string() << "\n"
            << "  checkpoint:  " << latest_checkpoint(run_dir_)->string() << "\n";
  if (r_.export_.enabled) {
    const fs::path out = run_dir_ / "export";
    model_->eval();
    export_model(model_, provenance_, out, r_.export_.merge_lora);
    std::cout << "  export:      " << out.string() << " (Hugging Face format"
              << (provenance_.lora && !r_.export_.merge_lora ? "; PEFT adapter in export/adapter"
                                                             : "")
              << ")\n"
              << "score it:  ./build/tailor score --model " << out.string()
              << (provenance_.lora && !r_.export_.merge_lora
                      ? " --adapter " + (out / "adapter").string()
                      : "")
              << " --input " << (r_.data.eval.empty() ? r_.data.train : r_.data.eval).string()
              << "\n";
  }
}

}  // namespace

int run_sft_stage(const SftRecipe& recipe) {
  SftStage stage(recipe);
  stage.setup();
  stage.resume();
  stage.train();
  stage.finish();
  return 0;
}

}  // namespace tailor
