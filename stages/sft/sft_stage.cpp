// The SFT stage: what supervised fine-tuning adds to the shared training loop
// (train/loop/training_loop.h). Its constructor builds the model (optionally with LoRA, or
// sharded at ZeRO-3) and the data; a step is grad_accum micro-batches of the causal LM loss; the
// evaluation is the held-out loss; finish() writes greedy samples and the Hugging Face export.
//
// Data parallel: every rank draws the same global batch of micro_batch_size x world examples per
// micro-step from one sampler and takes its slice; the loss is normalized by the learned tokens
// of the whole global step, so summed gradients equal one process's on the same batch. One
// process at zero_stage 0 keeps plain AdamW; otherwise the ZeRO engine owns the parameters'
// storage, the gradient reduction and the optimizer, and checkpoints are sharded.
#include "stages/sft/sft_stage.h"

#include <malloc.h>

#include <cmath>
#include <iomanip>
#include <iostream>
#include <numeric>

#include "common/device.h"
#include "common/error.h"
#include "data/sampling/epoch_sampler.h"
#include "data/sft/sft_dataset.h"
#include "dist/communicator.h"
#include "dist/runtime.h"
#include "models/core/lora.h"
#include "models/io/pretrained.h"
#include "models/tokenizer/prompt_format.h"
#include "models/tokenizer/tokenizer.h"
#include "stages/sft/samples.h"
#include "train/checkpoint/model_checkpoint.h"
#include "train/checkpoint/sharded_export.h"
#include "train/loop/model_setup.h"
#include "train/loop/ranks.h"
#include "train/loop/recipe_loop_config.h"
#include "train/loop/training_loop.h"
#include "train/losses/lm_loss.h"
#include "train/zero/sharded_model.h"
#include "train/zero/zero.h"

namespace tailor {
namespace fs = std::filesystem;
namespace {

LoopConfig loop_config(const SftRecipe& r) {
  return recipe_loop_config(r, "sft", recipe_hash(r), RecipeChange::kAllow);
}

class SftStage final : public TrainingStage {
 public:
  SftStage(const SftRecipe& recipe, TrainingLoop& loop);

  // What a checkpoint holds and restores beyond the model and the optimizer: the data position.
  TensorMap restorable_tensors() override;
  void load_state(const TrainerState& state, const std::string& source) override;
  TensorMap frozen_tensors_to_save() override;
  void save_state(TrainerState& state) override;
  // A step: grad_accum micro-batches of the causal LM loss over the global batch's tokens.
  void start_training() override { model_->train(); }
  void forward_backward(int64_t step, Optimizer& optimizer) override;
  StepResult step_result(int64_t step) override;
  void on_log(int64_t step, nlohmann::json& record) override;
  // The held-out loss; at the end also samples and the export.
  void evaluate(int64_t step) override;
  void finish(int64_t step) override;

 private:
  void build_model();
  void load_data();
  void announce_engine();
  dist::ZeroConfig zero_config() const;
  std::vector<data::SftBatch> next_step_batches();
  data::SftBatch on_device(data::SftBatch batch) const;
  // The held-out loss per learned token (NaN without eval data), logged to metrics.jsonl.
  double eval_loss(int64_t step);
  void write_samples_if_asked(int64_t step);
  void export_model();
  // Checkpoints hold the frozen base too unless it is a pretrained LoRA base (model.path).
  bool stores_base() const { return !r_.lora.enabled || r_.model.init == ModelInit::kRandom; }
  dist::ZeroEngine* engine() { return loop_.optimizer().engine(); }

  const SftRecipe& r_;
  TrainingLoop& loop_;
  dist::Communicator& comm_;
  c10::Device device_{c10::kCPU};  // dist.device: where the model and batches live
  int64_t grad_accum_ = 1;         // micro-batches per step on each rank
  std::optional<Tokenizer> tokenizer_;
  CausalLM model_;
  ModelProvenance provenance_;
  std::optional<data::SftDataset> train_data_, eval_data_;
  std::vector<int64_t> train_indices_, eval_indices_;  // into the datasets above
  std::optional<data::EpochSampler> sampler_;
  data::CollateOptions collate_;
  // The step in progress: summed over this rank's micro-batches, then over the ranks.
  double loss_sum_ = 0;
  int64_t tokens_ = 0;
  dist::CommStats before_step_;
  int64_t comm_bytes_ = 0;  // moved by this rank's collectives during the step
};

SftStage::SftStage(const SftRecipe& recipe, TrainingLoop& loop)
    : r_(recipe), loop_(loop), comm_(loop.comm()) {
  grad_accum_ = grad_accum_for_world(r_, comm_.world_size());
  tokenizer_ = Tokenizer::from_dir(r_.tokenizer);
  device_ = resolve_device(r_.dist.device, comm_.local_rank(), "dist.device");
  if (device_.is_cuda() && comm_.world_size() > 1 && !comm_.device().is_cuda())
    throw Error("dist", "dist.device: cuda with " + std::to_string(comm_.world_size()) +
                            " ranks needs the nccl backend, but the collectives are " +
                            comm_.backend() + " (CPU tensors); use dist.backend: auto or nccl");
  build_model();
  load_data();
  if (engine()) announce_engine();
}

dist::ZeroConfig SftStage::zero_config() const {
  dist::ZeroConfig config;
  config.stage = static_cast<int>(r_.dist.zero_stage);
  config.bucket_bytes = static_cast<int64_t>(r_.dist.bucket_mb * 1024 * 1024);
  config.adam = AdamWConfig{r_.optimizer.beta1, r_.optimizer.beta2, r_.optimizer.eps,
                            r_.optimizer.weight_decay};
  config.overlap = r_.dist.overlap;
  config.prefetch = static_cast<int>(r_.dist.prefetch);
  return config;
}

// HF initialisation from the seed, or pretrained weights; then LoRA (its A init also from the
// seed), and the optimizer. Under ZeRO-3 the engine is built with the model, each rank holding
// only its shards; at stages 0-2 it takes over the parameters of the model every rank built.
void SftStage::build_model() {
  const auto dtype = weights_dtype(r_.train.precision);
  const nlohmann::json config = model_config_for(r_.model);
  std::optional<LoraConfig> lora;
  if (r_.lora.enabled)
    lora =
        LoraConfig{r_.lora.rank, r_.lora.alpha, r_.lora.dropout, r_.lora.rslora, r_.lora.targets};
  std::vector<std::string> wrapped;
  std::unique_ptr<dist::ZeroEngine> engine;
  if (r_.dist.zero_stage == 3) {
    ShardedModel built =
        build_sharded_model(r_.model, config, dtype, lora, comm_, zero_config(), device_);
    model_ = built.model;
    engine = std::move(built.engine);
    wrapped = built.lora_modules;
  } else {
    // Built on the CPU (the same initial weights on every device), then moved whole.
    model_ = tailor::build_model(r_.model, config, dtype);
    if (lora) wrapped = apply_lora(*model_, *lora);
    model_->to(device_);
  }
  if (tokenizer_->vocab_size() > model_->vocab_size())
    throw Error("sft", "tokenizer " + r_.tokenizer.string() + " has " +
                           std::to_string(tokenizer_->vocab_size()) +
                           " tokens but the model only " + std::to_string(model_->vocab_size()));
  provenance_.config = config;
  provenance_.dtype = dtype_name(dtype);
  provenance_.tokenizer = fs::absolute(r_.tokenizer);
  if (!stores_base()) provenance_.base_model = fs::absolute(r_.model.path);
  if (lora) {
    provenance_.lora = lora;
    loop_.log() << "[sft] LoRA r=" << lora->rank << " on " << wrapped.size() << " modules\n";
  }
  int64_t n_params = 0, n_trainable = 0;
  if (engine) {
    n_trainable = engine->trainable_numel();
    n_params = n_trainable + engine->frozen_numel();
  } else {
    for (const auto& p : model_->parameters()) {
      n_params += p.numel();
      if (p.requires_grad()) n_trainable += p.numel();
    }
  }
  loop_.log() << "[sft] model: " << model_->model_type() << ", " << model_->num_layers()
              << " layers, hidden size " << model_->hidden_size() << ", " << n_params
              << " parameters, " << n_trainable << " trainable (" << provenance_.dtype << ", on "
              << device_.str() << ")\n";

  // The optimizer over the trainable parameters; no decay on 1-D tensors. One process at
  // zero_stage 0 keeps plain AdamW; otherwise the ZeRO engine holds the (sharded) state.
  const bool distributed = comm_.world_size() > 1 || r_.dist.zero_stage > 0;
  if (!engine && distributed) {
    std::vector<dist::ZeroParam> params;
    for (const auto& item : model_->named_parameters())
      params.push_back({item.key(), item.value(), decays_by_default(item.value())});
    engine = std::make_unique<dist::ZeroEngine>(comm_, std::move(params), model_->hook_groups(),
                                                zero_config());
  }
  if (engine) {
    loop_.set_optimizer(Optimizer::sharded(std::move(engine), comm_));
  } else {
    std::vector<TrainableParameter> params;
    for (const auto& item : model_->named_parameters())
      if (item.value().requires_grad())
        params.push_back({item.key(), item.value(), decays_by_default(item.value())});
    loop_.set_optimizer(Optimizer::replicated(std::move(params), zero_config().adam, comm_));
  }
}

// A .jsonl is tokenized in memory (prompts get the tokenizer's BOS and data.template,
// models/tokenizer/prompt_format.h), an .h5 store is read as imported.
void SftStage::load_data() {
  const auto encode = [this](const std::string& text) { return tokenizer_->encode(text); };
  // An example's optional "system" text goes into its prompt (data.template zephyr: a system turn).
  const auto encode_field = [this](const std::string& field, const std::string& text,
                                   const std::string& system) {
    return encode_sft_field(*tokenizer_, r_.data.prompt_template, field, text, system);
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
}

void SftStage::announce_engine() {
  const dist::ZeroConfig config = zero_config();
  const auto bytes = engine()->state_bytes();
  loop_.log() << "[sft] data parallel: " << comm_.world_size() << " ranks (" << comm_.backend()
              << "), ZeRO stage " << config.stage
              << (config.stage == 3 ? (config.overlap ? " (overlap, prefetch " +
                                                            std::to_string(config.prefetch) + ")"
                                                      : " (blocking collectives)")
                                    : "")
              << ", global batch " << r_.train.micro_batch_size * grad_accum_ * comm_.world_size()
              << "; model state per rank: params " << bytes.params << " B, grads " << bytes.grads
              << " B, optimizer " << bytes.optimizer << " B\n";
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

// The loss of a step is the mean over every learned token of the global batch.
void SftStage::forward_backward(int64_t step, Optimizer& optimizer) {
  const auto batches = next_step_batches();
  at::Tensor counts = at::zeros({2}, at::TensorOptions().dtype(at::kDouble));
  for (const auto& b : batches) {
    counts[0] += static_cast<double>(data::count_loss_tokens(b));
    counts[1] += static_cast<double>(data::count_tokens(b));
  }
  before_step_ = comm_.stats();
  counts = sum_over_ranks(comm_, counts);
  const double scale = 1.0 / std::max(1.0, counts[0].item<double>());
  tokens_ = static_cast<int64_t>(counts[1].item<double>());
  loss_sum_ = 0;
  AutocastScope autocast(r_.train.precision == Precision::kBf16Autocast, device_);
  for (const auto& b : batches) {
    auto loss =
        causal_lm_loss_sum(model_->forward(b.input_ids, b.attention_mask), b.labels) * scale;
    loss.backward();
    optimizer.after_backward();
    loss_sum_ += loss.item<double>();
  }
}

StepResult SftStage::step_result(int64_t step) {
  StepResult result;
  result.loss =
      sum_over_ranks(comm_, at::full({1}, loss_sum_, at::TensorOptions().dtype(at::kDouble)))
          .item<double>();
  result.tokens = tokens_;
  result.record = {{"loss", result.loss}, {"tokens", tokens_}};
  comm_bytes_ = comm_.stats().total_bytes() - before_step_.total_bytes();
  return result;
}

void SftStage::on_log(int64_t step, nlohmann::json& record) {
  if (device_.is_cuda()) record["peak_gpu_allocated_mib"] = device_peak_allocated_mib(device_);
  if (dist::ZeroEngine* e = engine()) {
    // What rank 0 holds and moved (ranks differ only by padding); see train/zero/zero.h.
    const auto bytes = e->state_bytes();
    record["world_size"] = comm_.world_size();
    record["zero_stage"] = e->stage();
    record["trainable_params"] = e->trainable_numel();
    record["frozen_params"] = e->frozen_numel();
    record["state_bytes_params"] = bytes.params;
    record["state_bytes_grads"] = bytes.grads;
    record["state_bytes_optimizer"] = bytes.optimizer;
    record["comm_bytes_step"] = comm_bytes_;
  }
}

void SftStage::evaluate(int64_t step) {
  const double loss = eval_loss(step);
  if (!std::isnan(loss)) loop_.log() << "[sft] step " << step << " eval loss " << loss << "\n";
}

double SftStage::eval_loss(int64_t step) {
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
  if (loop_.metrics())
    loop_.metrics()->log(
        step, {{"eval_loss", loss}, {"eval_ppl", std::exp(loss)}, {"eval_tokens", count}});
  return loss;
}

TensorMap SftStage::restorable_tensors() {
  return parameters_by_name(*model_);
}

TensorMap SftStage::frozen_tensors_to_save() {
  return stores_base() ? frozen_parameters(*model_) : TensorMap();
}

void SftStage::save_state(TrainerState& state) {
  state.epoch = sampler_->position().epoch;
  state.sample_position = sampler_->position().index;
  state.extra["model"] = provenance_to_json(provenance_);
  // Every rank writes its own shard; the manifest makes it readable at any world size.
  if (engine())
    state.extra["dist"] = {{"world_size", comm_.world_size()}, {"zero_stage", engine()->stage()}};
}

void SftStage::load_state(const TrainerState& state, const std::string& source) {
  sampler_->set_position({state.epoch, state.sample_position});
}

// Greedy completions of the first eval prompts (samples.prompts), on rank 0. Under ZeRO-3 no
// rank holds the whole model, so there the samples come from `tailor generate` on the export.
void SftStage::write_samples_if_asked(int64_t step) {
  if (r_.samples.prompts == 0 || r_.data.format != DataFormat::kPromptResponse) return;
  if (engine() && engine()->stage() == 3) {
    loop_.log() << "[sft] samples: skipped under ZeRO-3; run `tailor generate` on the export\n";
    return;
  }
  if (!loop_.rank0() || eval_indices_.empty()) return;
  const int64_t n = std::min<int64_t>(r_.samples.prompts, eval_indices_.size());
  const std::vector<int64_t> picks(eval_indices_.begin(), eval_indices_.begin() + n);
  const fs::path file = r_.output_dir / "samples.jsonl";
  loop_.log() << "[sft] greedy completions of " << n << " eval prompts (" << file.string()
              << "):\n";
  const SamplesResult result = write_samples(
      *model_, eval_data_ ? *eval_data_ : *train_data_, picks, *tokenizer_, tokenizer_->eos_id(),
      r_.samples.max_new_tokens, r_.samples.show, file, std::cout);
  model_->train();
  std::cout << "[sft] exact match: " << result.exact << "/" << result.count << " (" << std::fixed
            << std::setprecision(1) << 100.0 * result.exact_match_rate() << "%)\n"
            << std::defaultfloat << std::flush;
  if (loop_.metrics()) {
    loop_.metrics()->log(step, {{"samples/exact_match", result.exact_match_rate()},
                                {"samples/count", result.count}});
  }
}

// Rank 0 writes the Hugging Face export (minutes for a 7B model) while the others wait.
void SftStage::export_model() {
  const fs::path out = r_.output_dir / "export";
  model_->eval();
  if (!engine()) {
    tailor::export_model(*model_, provenance_, out, r_.export_.merge_lora);
  } else if (loop_.rank0()) {
    // One tensor at a time from the sharded checkpoint: no rank gathers the whole model. The
    // checkpoint holds everything the engine did, so its shards are freed first (and the heap
    // trimmed: tailor keeps freed memory in it), leaving rank 0 little more than one tensor.
    model_->set_forward_hooks(nullptr);
    loop_.release_optimizer();
    malloc_trim(0);
    export_checkpoint_streaming(*latest_checkpoint(r_.output_dir), out, r_.export_.merge_lora);
  }
}

void SftStage::finish(int64_t step) {
  const double loss = eval_loss(step);
  if (!std::isnan(loss))
    loop_.log() << "[sft] final eval loss " << loss << " (ppl " << std::exp(loss) << ")\n";
  write_samples_if_asked(step);
  if (r_.export_.enabled) export_model();
  comm_.barrier();  // nobody leaves before the export is complete
  if (!loop_.rank0()) return;
  const fs::path& run_dir = r_.output_dir;
  const fs::path out = run_dir / "export";
  std::cout << "run directory: " << run_dir.string() << "\n"
            << "  recipe:      " << (run_dir / "recipe.yaml").string() << "\n"
            << "  metrics:     " << (run_dir / "metrics.jsonl").string() << "\n"
            << "  checkpoint:  " << latest_checkpoint(run_dir)->string() << "\n";
  if (r_.export_.enabled) {
    const bool adapter = provenance_.lora && !r_.export_.merge_lora;
    const std::string adapter_arg = adapter ? " --adapter " + (out / "adapter").string() : "";
    std::cout << "  export:      " << out.string() << " (Hugging Face format"
              << (adapter ? "; PEFT adapter in export/adapter" : "") << ")\n"
              << "score it:     ./build/tailor score --model " << out.string() << adapter_arg
              << " --input " << (r_.data.eval.empty() ? r_.data.train : r_.data.eval).string()
              << "\n"
              << "generate:     echo '{\"prompt\": \"What sound does a cat make?\"}' | "
              << "./build/tailor generate --model " << out.string() << adapter_arg
              << " --input /dev/stdin\n";
  }
}

}  // namespace

void run_sft_stage(const SftRecipe& recipe) {
  if (recipe.dist.device == DeviceType::kCuda) {
    // Collectives on the GPUs (NCCL, bootstrapped over MPI; at one process NCCL of one rank).
    const auto comm = dist::make_device_communicator(recipe.dist.backend);
    run_sft_stage(recipe, *comm);
    return;
  }
  run_sft_stage(recipe, dist::world());
}

void run_sft_stage(const SftRecipe& recipe, dist::Communicator& comm) {
  run_stage<SftStage>(recipe, loop_config(recipe), comm);
}

}  // namespace tailor
