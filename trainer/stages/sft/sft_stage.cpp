// The SFT stage, top to bottom: setup() builds everything from the validated recipe, resume()
// restores a checkpoint, train() runs optimizer steps (each = grad_accum micro-batches), and
// finish() writes the last checkpoint, evaluates and exports.
//
// Data parallel: every rank draws the same global batch of micro_batch_size x world examples
// per micro-step from one sampler and takes its slice; the loss is normalized by the learned
// tokens of the whole global step, so summed gradients equal one process's on the same batch.
// One rank (or zero_stage 0) keeps the plain AdamW path; otherwise dist::ZeroEngine owns the
// parameters' storage, the gradient reduction and the optimizer, and checkpoints are sharded.
#include "trainer/stages/sft/sft_stage.h"

#include <malloc.h>

#include <chrono>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <numeric>

#include "common/atomic_file.h"
#include "common/device.h"
#include "common/error.h"
#include "common/process_memory.h"
#include "data/sampling/epoch_sampler.h"
#include "data/sft/sft_dataset.h"
#include "dist/collective_watchdog.h"
#include "dist/communicator.h"
#include "dist/runtime.h"
#include "dist/sharded_checkpoint.h"
#include "dist/zero.h"
#include "models/core/lora.h"
#include "models/io/hf_checkpoint.h"
#include "models/io/pretrained.h"
#include "models/tokenizer/tokenizer.h"
#include "trainer/losses/lm_loss.h"
#include "trainer/optim/adamw.h"
#include "trainer/optim/grad_clip.h"
#include "trainer/optim/lr_schedule.h"
#include "trainer/run/checkpoint.h"
#include "trainer/run/fault_injection.h"
#include "trainer/run/metrics.h"
#include "trainer/run/model_checkpoint.h"
#include "trainer/run/model_setup.h"
#include "trainer/run/ranks.h"
#include "trainer/run/rng_state.h"
#include "trainer/run/sharded_export.h"
#include "trainer/run/sharded_model.h"
#include "trainer/stages/prompt_format.h"
#include "trainer/stages/sft/samples.h"

namespace tailor {
namespace fs = std::filesystem;

namespace {

class SftStage {
 public:
  SftStage(const SftRecipe& recipe, dist::Communicator& comm)
      : r_(recipe), comm_(comm), rank0_(comm.rank() == 0) {}

  void setup();
  void resume();
  void train();
  void finish();

 private:
  std::vector<data::SftBatch> next_step_batches();
  data::SftBatch on_device(data::SftBatch batch) const;
  // Sums host-side numbers over the ranks through the communicator (on its device).
  double evaluate();
  void save_checkpoint();
  bool stores_base() const { return !r_.lora.enabled || r_.model.init == ModelInit::kRandom; }
  void write_samples_if_asked();
  dist::ZeroConfig zero_config() const;
  void setup_engine();
  void announce_engine();
  // Forward/backward over a step's micro-batches, then one update: plain AdamW, or the ZeRO
  // engine's reduction and sharded update.
  void optimizer_step(const std::vector<data::SftBatch>& batches, double scale, double* loss_sum,
                      double* norm);
  std::ostream& log() { return rank0_ ? std::cerr : null_; }

  const SftRecipe& r_;
  dist::Communicator& comm_;
  const bool rank0_;
  c10::Device device_{c10::kCPU};             // dist.device: where the model and batches live
  std::ostream null_{nullptr};                // non-zero ranks print nothing but errors
  int64_t grad_accum_ = 1;                    // micro-batches per step on each rank
  std::unique_ptr<dist::ZeroEngine> engine_;  // the distributed path; null = plain AdamW
  fs::path run_dir_;
  std::optional<Tokenizer> tokenizer_;
  CausalLM model_;
  ModelProvenance provenance_;
  std::optional<data::SftDataset> train_data_, eval_data_;
  std::vector<int64_t> train_indices_, eval_indices_;  // into the datasets above
  std::optional<data::EpochSampler> sampler_;
  data::CollateOptions collate_;
  AdamWConfig adam_;
  std::optional<AdamW> optimizer_;
  std::optional<LrSchedule> schedule_;
  std::optional<MetricsWriter> metrics_;
  int64_t step_ = 0;
  int64_t last_checkpoint_step_ = -1;
};

void SftStage::setup() {
  run_dir_ = r_.output_dir;
  check_ranks_agree(comm_, recipe_hash(r_));
  grad_accum_ = grad_accum_for_world(r_, comm_.world_size());
  if (rank0_) fs::create_directories(run_dir_);  // `tailor run` already wrote recipe.yaml
  comm_.barrier();
  // Same seed on every rank: identical initial weights; dropout streams differ per rank below.
  torch::manual_seed(static_cast<uint64_t>(r_.seed));

  tokenizer_ = Tokenizer::from_dir(r_.tokenizer);
  device_ = resolve_device(r_.dist.device, comm_.local_rank(), "dist.device");
  if (device_.is_cuda() && comm_.world_size() > 1 && !comm_.device().is_cuda())
    throw Error("dist", "dist.device: cuda with " + std::to_string(comm_.world_size()) +
                            " ranks needs the nccl backend, but the collectives are " +
                            comm_.backend() + " (CPU tensors); use dist.backend: auto or nccl");

  // Model: HF init from the seed, or pretrained weights; then LoRA (its A init also from the seed).
  // Under ZeRO-3 the engine is built with the model, each rank holding only its shards.
  const auto dtype = r_.train.precision == Precision::kBf16 ? at::kBFloat16 : at::kFloat;
  const nlohmann::json config = model_config_for(r_.model);
  adam_ = AdamWConfig{r_.optimizer.beta1, r_.optimizer.beta2, r_.optimizer.eps,
                      r_.optimizer.weight_decay};
  std::optional<LoraConfig> lora;
  if (r_.lora.enabled)
    lora =
        LoraConfig{r_.lora.rank, r_.lora.alpha, r_.lora.dropout, r_.lora.rslora, r_.lora.targets};
  std::vector<std::string> wrapped;
  if (r_.dist.zero_stage == 3) {
    ShardedModel built =
        build_sharded_model(r_.model, config, dtype, lora, comm_, zero_config(), device_);
    model_ = built.model;
    engine_ = std::move(built.engine);
    wrapped = built.lora_modules;
  } else {
    // Built on the CPU (the same initial weights on every device), then moved whole.
    model_ = build_model(r_.model, config, dtype);
    if (lora) wrapped = apply_lora(*model_, *lora);
    model_->to(device_);
  }
  if (tokenizer_->vocab_size() > model_->vocab_size())
    throw Error("sft", "tokenizer " + r_.tokenizer.string() + " has " +
                           std::to_string(tokenizer_->vocab_size()) +
                           " tokens but the model only " + std::to_string(model_->vocab_size()));
  provenance_.config = config;
  provenance_.dtype = dtype == at::kBFloat16 ? "bfloat16" : "float32";
  provenance_.tokenizer = fs::absolute(r_.tokenizer);
  if (!stores_base()) provenance_.base_model = fs::absolute(r_.model.path);
  if (lora) {
    provenance_.lora = lora;
    log() << "[sft] LoRA r=" << lora->rank << " on " << wrapped.size() << " modules\n";
  }
  int64_t n_params = 0, n_trainable = 0;
  if (engine_) {
    n_trainable = engine_->trainable_numel();
    n_params = n_trainable + engine_->frozen_numel();
  } else {
    for (const auto& p : model_->parameters()) {
      n_params += p.numel();
      if (p.requires_grad()) n_trainable += p.numel();
    }
  }
  log() << "[sft] model: " << model_->model_type() << ", " << model_->num_layers()
        << " layers, hidden size " << model_->hidden_size() << ", " << n_params << " parameters, "
        << n_trainable << " trainable (" << provenance_.dtype << ", on " << device_.str() << ")\n";

  // Data: a .jsonl is tokenized in memory, an .h5 store is read as imported.
  // (JSONL prompts get the tokenizer's BOS and data.template, trainer/stages/prompt_format.h)
  const auto encode = [this](const std::string& text) { return tokenizer_->encode(text); };
  const auto encode_field = [this](const std::string& field, const std::string& text) {
    return encode_sft_field(*tokenizer_, r_.data.prompt_template, field, text);
  };
  train_data_ = data::SftDataset::load(r_.data.train, encode, encode_field);
  const bool want_text = r_.data.format == DataFormat::kText;
  if (want_text != (train_data_->kind() == data::StoreKind::text))
    throw Error("recipe", "data.format is " + to_string(r_.data.format) + " but " +
                              r_.data.train.string() + " holds " +
                              data::kind_name(train_data_->kind()) + " records");
  train_indices_.resize(train_data_->size());
  std::iota(train_indices_.begin(), train_indices_.end(), 0);
  if (!r_.data.eval.empty()) {
    eval_data_ = data::SftDataset::load(r_.data.eval, encode, encode_field);
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
  collate_.max_length = std::min(r_.data.max_length, model_->max_positions());
  collate_.eos_id = tokenizer_->eos_id();
  collate_.append_eos = true;  // learn to stop

  // Optimizer over the trainable parameters; no decay on 1-D tensors. With ZeRO the engine
  // holds the (sharded) optimizer state instead.
  const bool distributed = comm_.world_size() > 1 || r_.dist.zero_stage > 0;
  if (!distributed) {
    optimizer_.emplace(adam_);
    for (const auto& item : model_->named_parameters()) {
      if (item.value().requires_grad())
        optimizer_->add_param(item.key(), item.value(), decays_by_default(item.value()));
    }
  }
  schedule_.emplace(schedule_config(r_.schedule, r_.optimizer, r_.train.max_steps));
  if (rank0_) metrics_.emplace(run_dir_ / "metrics.jsonl");
  if (distributed && !engine_) setup_engine();
  if (engine_) announce_engine();
  // Dropout masks differ between ranks (each sees different examples).
  if (comm_.rank() > 0) torch::manual_seed(static_cast<uint64_t>(r_.seed) + 7919ULL * comm_.rank());
}

dist::ZeroConfig SftStage::zero_config() const {
  dist::ZeroConfig config;
  config.stage = static_cast<int>(r_.dist.zero_stage);
  config.bucket_bytes = static_cast<int64_t>(r_.dist.bucket_mb * 1024 * 1024);
  config.adam = adam_;
  config.overlap = r_.dist.overlap;
  config.prefetch = static_cast<int>(r_.dist.prefetch);
  return config;
}

// Stages 0-2: the engine takes over the parameters of the model every rank built.
void SftStage::setup_engine() {
  std::vector<dist::ZeroParam> params;
  for (const auto& item : model_->named_parameters())
    params.push_back({item.key(), item.value(), decays_by_default(item.value())});
  engine_ = std::make_unique<dist::ZeroEngine>(comm_, std::move(params), model_->hook_groups(),
                                               zero_config());
}

void SftStage::announce_engine() {
  const dist::ZeroConfig config = zero_config();
  const auto bytes = engine_->state_bytes();
  log() << "[sft] data parallel: " << comm_.world_size() << " ranks (" << comm_.backend()
        << "), ZeRO stage " << config.stage
        << (config.stage == 3
                ? (config.overlap ? " (overlap, prefetch " + std::to_string(config.prefetch) + ")"
                                  : " (blocking collectives)")
                : "")
        << ", global batch " << r_.train.micro_batch_size * grad_accum_ * comm_.world_size()
        << "; model state per rank: params " << bytes.params << " B, grads " << bytes.grads
        << " B, optimizer " << bytes.optimizer << " B\n";
}

void SftStage::resume() {
  if (!r_.train.resume) return;
  auto latest = latest_checkpoint(run_dir_);
  if (!latest) {
    log() << "[sft] resume: no checkpoint in " << run_dir_ << ", starting from step 0\n";
    return;
  }
  // The reader opens both layouts, so a run resumes at any world size and ZeRO stage.
  dist::ShardedCheckpointReader reader(*latest);
  if (engine_) {
    engine_->load_checkpoint(reader, stores_base());
  } else {
    auto params = model_->named_parameters();
    TensorMap optimizer_state;
    at::NoGradGuard no_grad;
    for (const auto& info : reader.tensors()) {
      if (info.kind == "optimizer") {
        optimizer_state[info.name] = reader.read(info.name);
        continue;
      }
      auto* param = params.find(info.name);
      if (!param)
        throw Error("sft",
                    latest->string() + ": checkpoint tensor " + info.name + " is not in the model");
      param->copy_(reader.read(info.name));
    }
    optimizer_->import_state(optimizer_state);
  }
  const TrainerState& state = reader.state();
  step_ = state.step;
  sampler_->set_position({state.epoch, state.sample_position});
  // RNG streams continue exactly when the world size is unchanged; otherwise each rank reseeds
  // from (seed, step, rank), which only dropout notices.
  const auto& rng = state.rng;
  if (rng.contains("ranks") && rng["ranks"].size() == static_cast<size_t>(comm_.world_size())) {
    restore_torch_rng_states(rng["ranks"][comm_.rank()]);
  } else if (!rng.contains("ranks") && comm_.world_size() == 1) {
    restore_torch_rng_states(rng);
  } else {
    torch::manual_seed(static_cast<uint64_t>(r_.seed) ^ (static_cast<uint64_t>(step_) << 20) ^
                       (7919ULL * comm_.rank()));
    log() << "[sft] resume: world size changed, RNG streams reseeded\n";
  }
  if (metrics_) metrics_->truncate_after(step_);
  last_checkpoint_step_ = step_;
  log() << "[sft] resumed from " << latest->string() << " at step " << step_ << "\n";
}

std::vector<data::SftBatch> SftStage::next_step_batches() {
  std::vector<data::SftBatch> batches;
  const int64_t B = r_.train.micro_batch_size;
  for (int64_t i = 0; i < grad_accum_; ++i) {
    // The global micro-batch of B x world examples; this rank's slice.
    const auto global = sampler_->next_batch(B * comm_.world_size());
    std::vector<int64_t> picks(global.begin() + comm_.rank() * B,
                               global.begin() + (comm_.rank() + 1) * B);
    for (auto& p : picks)
      p = train_indices_[p];
    batches.push_back(on_device(train_data_->collate(picks, collate_)));
  }
  return batches;
}

data::SftBatch SftStage::on_device(data::SftBatch batch) const {
  if (device_.is_cpu()) return batch;
  batch.input_ids = batch.input_ids.to(device_);
  batch.attention_mask = batch.attention_mask.to(device_);
  batch.labels = batch.labels.to(device_);
  return batch;
}

void SftStage::optimizer_step(const std::vector<data::SftBatch>& batches, double scale,
                              double* loss_sum, double* norm) {
  {
    AutocastScope autocast(r_.train.precision == Precision::kBf16Autocast, device_);
    for (const auto& b : batches) {
      auto loss =
          causal_lm_loss_sum(model_->forward(b.input_ids, b.attention_mask), b.labels) * scale;
      loss.backward();
      if (engine_) engine_->after_backward();
      *loss_sum += loss.item<double>();
    }
  }
  const double lr = schedule_->lr_at(step_);
  if (!engine_) {
    std::vector<at::Tensor> trainable;
    for (const auto& p : model_->parameters())
      if (p.requires_grad()) trainable.push_back(p);
    *norm = r_.optimizer.grad_clip > 0 ? clip_grad_norm_(trainable, r_.optimizer.grad_clip)
                                       : grad_norm(trainable);
    optimizer_->step(lr);
    optimizer_->zero_grad();
    return;
  }
  *norm = engine_->reduce_gradients();
  if (r_.optimizer.grad_clip > 0 && std::isfinite(*norm)) {
    const double coef = r_.optimizer.grad_clip / (*norm + 1e-6);  // as clip_grad_norm_
    if (coef < 1.0) engine_->scale_gradients(coef);
  }
  engine_->step(lr);
  engine_->zero_grad();
}

void SftStage::train() {
  model_->train();
  ProgressLine progress({r_.train.max_steps, step_, 10.0, 20}, log());
  while (step_ < r_.train.max_steps) {
    maybe_inject_fault(comm_.rank(), step_ + 1);
    // The loss of a step is the mean over every learned token of the global batch.
    auto batches = next_step_batches();
    at::Tensor counts = at::zeros({2}, at::TensorOptions().dtype(at::kDouble));
    for (const auto& b : batches) {
      counts[0] += static_cast<double>(data::count_loss_tokens(b));
      counts[1] += static_cast<double>(data::count_tokens(b));
    }
    const dist::CommStats before = comm_.stats();
    counts = sum_over_ranks(comm_, counts);
    const double loss_tokens = counts[0].item<double>();
    const int64_t tokens = static_cast<int64_t>(counts[1].item<double>());
    const double scale = 1.0 / std::max(1.0, loss_tokens);
    double loss_sum = 0, norm = 0;
    const double lr = schedule_->lr_at(step_);
    optimizer_step(batches, scale, &loss_sum, &norm);
    loss_sum =
        sum_over_ranks(comm_, at::full({1}, loss_sum, at::TensorOptions().dtype(at::kDouble)))
            .item<double>();
    const int64_t comm_bytes = comm_.stats().total_bytes() - before.total_bytes();
    step_ += 1;

    const bool last = step_ == r_.train.max_steps;
    const bool log_now = last || step_ % r_.train.log_every == 0;
    progress.update(step_, tokens, loss_sum, lr, log_now);
    // Peak RSS of this process and the largest over the ranks (a collective: every rank logs
    // at the same steps).
    double peak_rss = 0, peak_rss_max = 0;
    if (log_now) {
      peak_rss = peak_rss_max = peak_rss_mib();
      if (comm_.world_size() > 1) {
        for (const auto& value : comm_.all_gather_strings(std::to_string(peak_rss)))
          peak_rss_max = std::max(peak_rss_max, std::stod(value));
      }
    }
    if (log_now && metrics_) {
      nlohmann::json record = {{"loss", loss_sum},
                               {"lr", lr},
                               {"grad_norm", norm},
                               {"tokens", tokens},
                               {"tokens_per_s", progress.tokens_per_second()},
                               {"peak_rss_mib", peak_rss},
                               {"peak_rss_mib_max_rank", peak_rss_max}};
      if (device_.is_cuda()) record["peak_gpu_allocated_mib"] = device_peak_allocated_mib(device_);
      if (engine_) {
        // What rank 0 holds and moved (ranks differ only by padding); see dist/zero.h.
        const auto bytes = engine_->state_bytes();
        record["world_size"] = comm_.world_size();
        record["zero_stage"] = engine_->stage();
        record["trainable_params"] = engine_->trainable_numel();
        record["frozen_params"] = engine_->frozen_numel();
        record["state_bytes_params"] = bytes.params;
        record["state_bytes_grads"] = bytes.grads;
        record["state_bytes_optimizer"] = bytes.optimizer;
        record["comm_bytes_step"] = comm_bytes;
      }
      metrics_->log(step_, record);
    }
    if (r_.train.eval_every > 0 && step_ % r_.train.eval_every == 0 && !last) {
      const double eval_loss = evaluate();
      if (!std::isnan(eval_loss))
        log() << "[sft] step " << step_ << " eval loss " << eval_loss << "\n";
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
    auto b = on_device(eval_data_ ? eval_data_->collate(picks, collate_)
                                  : train_data_->collate(picks, collate_));
    auto logits = model_->forward(b.input_ids, b.attention_mask);
    nll += causal_lm_loss_sum(logits, b.labels).item<double>();
    count += data::count_loss_tokens(b);
  }
  model_->train();
  const double loss = nll / std::max<int64_t>(1, count);
  if (metrics_)
    metrics_->log(step_,
                  {{"eval_loss", loss}, {"eval_ppl", std::exp(loss)}, {"eval_tokens", count}});
  return loss;
}

void SftStage::save_checkpoint() {
  TrainerState state;
  state.step = step_;
  state.epoch = sampler_->position().epoch;
  state.sample_position = sampler_->position().index;
  state.recipe_hash = recipe_hash(r_);
  state.rng = capture_torch_rng_states();
  state.extra["model"] = provenance_to_json(provenance_);
  fs::path dir;
  if (engine_) {
    // Every rank writes its own shard; the manifest makes it readable at any world size.
    state.extra["dist"] = {{"world_size", comm_.world_size()}, {"zero_stage", engine_->stage()}};
    dist::SaveShardedOptions options;
    options.keep_last = static_cast<int>(r_.train.keep_checkpoints);
    dir = dist::save_sharded_checkpoint(comm_, run_dir_, engine_->checkpoint_tensors(stores_base()),
                                        engine_->checkpoint_pieces(stores_base()), state, options);
  } else {
    TensorMap tensors;
    for (const auto& item : model_->named_parameters()) {
      if (stores_base() || item.value().requires_grad()) tensors[item.key()] = item.value();
    }
    SaveCheckpointOptions options;
    options.keep_last = static_cast<int>(r_.train.keep_checkpoints);
    dir = tailor::save_checkpoint(run_dir_, tensors, optimizer_->export_state(), state, options);
  }
  last_checkpoint_step_ = step_;
  log() << "[sft] checkpoint " << dir.string() << "\n";
}

// Greedy completions of the first eval prompts (samples.prompts), on rank 0. Under ZeRO-3 no
// rank holds the whole model, so there the samples come from `tailor generate` on the export.
void SftStage::write_samples_if_asked() {
  if (r_.samples.prompts == 0 || r_.data.format != DataFormat::kPromptResponse) return;
  if (engine_ && engine_->stage() == 3) {
    log() << "[sft] samples: skipped under ZeRO-3; run `tailor generate` on the export\n";
    return;
  }
  if (!rank0_ || eval_indices_.empty()) return;
  const int64_t n = std::min<int64_t>(r_.samples.prompts, eval_indices_.size());
  const std::vector<int64_t> picks(eval_indices_.begin(), eval_indices_.begin() + n);
  const fs::path file = run_dir_ / "samples.jsonl";
  log() << "[sft] greedy completions of " << n << " eval prompts (" << file.string() << "):\n";
  const SamplesResult result = write_samples(
      *model_, eval_data_ ? *eval_data_ : *train_data_, picks, *tokenizer_, tokenizer_->eos_id(),
      r_.samples.max_new_tokens, r_.samples.show, file, std::cout);
  model_->train();
  std::cout << "[sft] exact match: " << result.exact << "/" << result.count << " (" << std::fixed
            << std::setprecision(1) << 100.0 * result.exact_match_rate() << "%)\n"
            << std::defaultfloat << std::flush;
  if (metrics_) {
    metrics_->log(step_, {{"samples/exact_match", result.exact_match_rate()},
                          {"samples/count", result.count}});
  }
}

void SftStage::finish() {
  if (last_checkpoint_step_ != step_) save_checkpoint();
  const double eval_loss = evaluate();
  if (!std::isnan(eval_loss))
    log() << "[sft] final eval loss " << eval_loss << " (ppl " << std::exp(eval_loss) << ")\n";
  // Rank 0 alone writes samples and exports (minutes for a 7B model) while the others wait in
  // the barrier below: no collective timeout until finish() returns.
  const dist::UnboundedWait rank0_alone;
  write_samples_if_asked();
  const fs::path out = run_dir_ / "export";
  if (r_.export_.enabled) {
    model_->eval();
    if (!engine_) {
      export_model(*model_, provenance_, out, r_.export_.merge_lora);
    } else if (rank0_) {
      // One tensor at a time from the sharded checkpoint: no rank gathers the whole model. The
      // checkpoint holds everything the engine did, so its shards are freed first (and the heap
      // trimmed: tailor keeps freed memory in it), leaving rank 0 little more than one tensor.
      model_->set_forward_hooks(nullptr);
      engine_.reset();
      malloc_trim(0);
      export_checkpoint_streaming(*latest_checkpoint(run_dir_), out, r_.export_.merge_lora);
    }
  }
  comm_.barrier();  // nobody leaves before the export is complete
  if (!rank0_) return;
  std::cout << "run directory: " << run_dir_.string() << "\n"
            << "  recipe:      " << (run_dir_ / "recipe.yaml").string() << "\n"
            << "  metrics:     " << (run_dir_ / "metrics.jsonl").string() << "\n"
            << "  checkpoint:  " << latest_checkpoint(run_dir_)->string() << "\n";
  if (r_.export_.enabled) {
    const std::string adapter = provenance_.lora && !r_.export_.merge_lora
                                    ? " --adapter " + (out / "adapter").string()
                                    : "";
    std::cout << "  export:      " << out.string() << " (Hugging Face format"
              << (provenance_.lora && !r_.export_.merge_lora ? "; PEFT adapter in export/adapter"
                                                             : "")
              << ")\n"
              << "score it:     ./build/tailor score --model " << out.string() << adapter
              << " --input " << (r_.data.eval.empty() ? r_.data.train : r_.data.eval).string()
              << "\n"
              << "generate:     echo '{\"prompt\": \"What sound does a cat make?\"}' | "
              << "./build/tailor generate --model " << out.string() << adapter
              << " --input /dev/stdin\n";
  }
}

}  // namespace

int run_sft_stage(const SftRecipe& recipe) {
  if (recipe.dist.device == "cuda") {
    // Collectives on the GPUs (NCCL, bootstrapped over MPI; at one process NCCL of one rank).
    const auto comm = dist::make_device_communicator(recipe.dist.backend);
    return run_sft_stage(recipe, *comm);
  }
  return run_sft_stage(recipe, dist::world());
}

int run_sft_stage(const SftRecipe& recipe, dist::Communicator& comm) {
  SftStage stage(recipe, comm);
  stage.setup();
  stage.resume();
  stage.train();
  stage.finish();
  return 0;
}

}  // namespace tailor
