#include "train/loop/training_loop.h"

#include <algorithm>
#include <iostream>

#include <torch/torch.h>

#include "common/error.h"
#include "common/process_memory.h"
#include "dist/collective_watchdog.h"
#include "train/checkpoint/rng_state.h"
#include "train/checkpoint/sharded_checkpoint.h"
#include "train/loop/fault_injection.h"
#include "train/loop/ranks.h"

namespace tailor {
namespace fs = std::filesystem;

TensorMap parameters_by_name(torch::nn::Module& model) {
  TensorMap out;
  for (const auto& item : model.named_parameters())
    out[item.key()] = item.value();
  return out;
}

TensorMap frozen_parameters(torch::nn::Module& model) {
  TensorMap out;
  for (const auto& item : model.named_parameters())
    if (!item.value().requires_grad()) out[item.key()] = item.value();
  return out;
}

TrainingLoop::TrainingLoop(LoopConfig config, dist::Communicator& comm)
    : config_(std::move(config)), comm_(comm), rank0_(comm.rank() == 0) {
  check_ranks_agree(comm_, config_.recipe_hash);
  if (rank0_) fs::create_directories(config_.run_dir);  // `tailor run` already wrote recipe.yaml
  comm_.barrier();
  // The same seed on every rank: identical initial weights. Dropout streams differ per rank from
  // run() on.
  torch::manual_seed(static_cast<uint64_t>(config_.seed));
  schedule_.emplace(config_.schedule);
}

std::ostream& TrainingLoop::log() {
  return rank0_ ? std::cerr : null_;
}

double TrainingLoop::lr_at(int64_t step) const {
  return schedule_->lr_at(step);
}

void TrainingLoop::set_optimizer(std::unique_ptr<Optimizer> optimizer) {
  optimizer_ = std::move(optimizer);
}

void TrainingLoop::run(TrainingStage& stage) {
  if (!optimizer_) throw Error(config_.name, "internal: the stage set no optimizer");
  // Opened once the stage is built, so a stage that refuses its recipe leaves no metrics file.
  if (rank0_) metrics_.emplace(config_.run_dir / "metrics.jsonl");
  if (comm_.rank() > 0)
    torch::manual_seed(static_cast<uint64_t>(config_.seed) + 7919ULL * comm_.rank());
  resume(stage);
  stage.start_training();
  train(stage);
  if ((config_.checkpoint_at_end || config_.checkpoint_every > 0) && last_checkpoint_step_ != step_)
    save_checkpoint(stage);
  // The final evaluation splits its work over the ranks, but samples and the export are rank 0's
  // alone while the others wait: no collective timeout from here on.
  const dist::UnboundedWait long_phase;
  stage.finish(step_);
}

void TrainingLoop::resume(TrainingStage& stage) {
  if (!config_.resume) return;
  const auto latest = latest_checkpoint(config_.run_dir);
  if (!latest) {
    log() << "[" << config_.name << "] resume: no checkpoint in " << config_.run_dir.string()
          << ", starting from step 0\n";
    return;
  }
  // The reader opens both layouts (one process's files, or a sharded checkpoint of any world
  // size), so a run resumes at any world size and ZeRO stage.
  const dist::ShardedCheckpointReader reader(*latest);
  const TrainerState& state = reader.state();
  const std::string source = (*latest / "trainer_state.json").string();
  if (state.recipe_hash != config_.recipe_hash) {
    if (config_.recipe_change == RecipeChange::kRefuse)
      throw Error(config_.name, latest->string() + " was written by a different recipe (hash " +
                                    state.recipe_hash + ", this one " + config_.recipe_hash +
                                    "); resume needs the recipe of that run");
    if (config_.recipe_change == RecipeChange::kWarn)
      log() << "[" << config_.name
            << "] resume: warning: the recipe differs from the one the checkpoint was written "
               "with (hash "
            << state.recipe_hash << ", now " << config_.recipe_hash << ")\n";
  }
  stage.check_checkpoint(state, source);
  optimizer_->load(reader, stage.restorable_tensors());
  step_ = state.step;
  stage.load_state(state, source);
  // RNG streams continue exactly when the world size is unchanged; otherwise each rank reseeds
  // from (seed, step, rank), which only dropout notices.
  const nlohmann::json& rng = state.rng;
  if (rng.contains("ranks") && rng.at("ranks").size() == static_cast<size_t>(comm_.world_size())) {
    restore_torch_rng_states(rng.at("ranks")[static_cast<size_t>(comm_.rank())]);
  } else if (!rng.contains("ranks") && comm_.world_size() == 1) {
    restore_torch_rng_states(rng);
  } else {
    torch::manual_seed(static_cast<uint64_t>(config_.seed) ^ (static_cast<uint64_t>(step_) << 20) ^
                       (7919ULL * comm_.rank()));
    log() << "[" << config_.name << "] resume: world size changed, RNG streams reseeded\n";
  }
  if (metrics_) metrics_->truncate_after(step_);
  last_checkpoint_step_ = step_;
  log() << "[" << config_.name << "] resumed from " << latest->string() << " at step " << step_
        << "\n";
}

std::pair<double, double> TrainingLoop::peak_rss() const {
  const double mine = peak_rss_mib();
  double largest = mine;
  if (comm_.world_size() > 1)
    for (const auto& value : comm_.all_gather_strings(std::to_string(mine)))
      largest = std::max(largest, std::stod(value));
  return {mine, largest};
}

void TrainingLoop::train(TrainingStage& stage) {
  ProgressLine progress({config_.max_steps, step_, 10.0, 20}, log());
  while (step_ < config_.max_steps) {
    stage.before_step(step_);
    maybe_inject_fault(comm_.rank(), step_ + 1);
    const double lr = schedule_->lr_at(step_);
    stage.forward_backward(step_, *optimizer_);
    optimizer_->reduce_gradients();
    const double norm = stage.clip_gradients(*optimizer_, config_.grad_clip);
    optimizer_->step(lr);
    optimizer_->zero_grad();
    StepResult result = stage.step_result(step_);
    step_ += 1;

    const bool last = step_ == config_.max_steps;
    const bool log_now = last || step_ % config_.log_every == 0;
    progress.update(step_, result.tokens, result.loss, lr, log_now);
    if (log_now) {
      nlohmann::json& record = result.record;
      record["lr"] = lr;
      record["grad_norm"] = norm;
      record["tokens_per_s"] = progress.tokens_per_second();
      if (config_.log_memory) {
        const auto [mine, largest] = peak_rss();
        record["peak_rss_mib"] = mine;
        record["peak_rss_mib_max_rank"] = largest;
      }
      stage.on_log(step_, record);
      if (metrics_) metrics_->log(step_, record);
    }
    if (config_.eval_every > 0 && step_ % config_.eval_every == 0 && !last) stage.evaluate(step_);
    if (config_.checkpoint_every > 0 && step_ % config_.checkpoint_every == 0 && !last)
      save_checkpoint(stage);
  }
}

fs::path TrainingLoop::save_checkpoint(TrainingStage& stage) {
  TrainerState state;
  state.step = step_;
  state.recipe_hash = config_.recipe_hash;
  stage.save_state(state);
  const fs::path dir = optimizer_->save(config_.run_dir, stage.frozen_tensors_to_save(), state,
                                        static_cast<int>(config_.keep_checkpoints));
  last_checkpoint_step_ = step_;
  log() << "[" << config_.name << "] checkpoint " << dir.string()
        << (comm_.world_size() > 1 && optimizer_->engine()
                ? " (sharded over " + std::to_string(comm_.world_size()) + " ranks)"
                : "")
        << "\n";
  return dir;
}

}  // namespace tailor
