// The training loop every stage shares. A stage is what is its own (TrainingStage below): its
// model and data, the forward and backward passes of a step, its evaluation and its export. The
// loop owns everything else:
//   - the run: the ranks agree on the recipe, the run directory exists, torch's generator is
//     seeded before the stage builds its model, and re-seeded per rank before training (each
//     rank's dropout masks differ);
//   - the optimizer step (train/loop/optimizer.h: plain AdamW or the ZeRO engine): gradient
//     reduction over the ranks, clipping, the learning-rate schedule;
//   - checkpoints every train.checkpoint_every steps and at the end (atomic; sharded under ZeRO)
//     and resume from the latest one with every rank's RNG streams (a changed world size reseeds
//     them from the seed, the step and the rank);
//   - progress on stderr, metrics.jsonl on rank 0, fault injection for the resume tests, and no
//     collective timeout while rank 0 alone evaluates or exports at the end.
//
// run_stage<MyStage>(recipe, config, comm) below is the whole of a run:
//   TrainingLoop loop(config, comm);   // ranks agree, run directory, seed
//   MyStage stage(recipe, loop);       // model, data; loop.set_optimizer(...)
//   loop.run(stage);                   // resume, train, last checkpoint, stage.finish()
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

#include "dist/communicator.h"
#include "models/core/tensor_map.h"
#include "train/checkpoint/checkpoint.h"
#include "train/loop/metrics.h"
#include "train/loop/optimizer.h"
#include "train/optim/lr_schedule.h"

namespace torch::nn {
class Module;
}

namespace tailor {

// What resuming does with a checkpoint whose recipe hash differs from this run's.
enum class RecipeChange { kAllow, kWarn, kRefuse };

struct LoopConfig {
  std::string name;  // the stage, for log lines: "[sft] ..."
  int64_t seed = 0;
  std::filesystem::path run_dir;
  std::string recipe_hash;  // ranks must agree on it; checkpoints record it
  RecipeChange recipe_change = RecipeChange::kAllow;
  int64_t max_steps = 1;
  int64_t log_every = 1;
  int64_t eval_every = 0;         // 0 = only the stage's final evaluation
  int64_t checkpoint_every = 0;   // 0 = only the last step's (or none, see below)
  bool checkpoint_at_end = true;  // false: no checkpoint at all when checkpoint_every is 0
  int64_t keep_checkpoints = 0;
  bool resume = false;
  double grad_clip = 0;  // optimizer.grad_clip: the global norm (or the stage's own clipping)
  ScheduleConfig schedule;
  bool log_memory = true;  // peak RSS of rank 0 and of the largest rank in every metrics record
};

// One step's numbers, for the progress line and metrics.jsonl.
struct StepResult {
  double loss = 0;
  int64_t tokens = 0;                                // over every rank
  nlohmann::json record = nlohmann::json::object();  // the stage's metrics of the step
};

class TrainingStage {
 public:
  virtual ~TrainingStage() = default;

  // Once before the first step this process trains (after resume).
  virtual void start_training() {}
  // Before every step; `step` steps are done.
  virtual void before_step(int64_t step) {}
  // The forward and backward passes of the step after `step` done steps: every micro-batch,
  // optimizer.after_backward() after each backward. The loop then reduces the gradients.
  virtual void forward_backward(int64_t step, Optimizer& optimizer) = 0;
  // Clips the reduced gradients to `max_norm`; returns the norm metrics call grad_norm.
  virtual double clip_gradients(Optimizer& optimizer, double max_norm) {
    return clip_global_norm(optimizer, max_norm);
  }
  // After the update of the step after `step` done steps: its loss, tokens and metrics. Every
  // rank calls it, so it may sum over the ranks.
  virtual StepResult step_result(int64_t step) = 0;
  // At log steps, on every rank, after the loop filled lr, grad_norm, tokens_per_s (and memory):
  // more keys, and log lines.
  virtual void on_log(int64_t step, nlohmann::json& record) {}
  // Every train.eval_every steps but the last (finish() evaluates then).
  virtual void evaluate(int64_t step) {}

  // Checkpoints. Every model tensor by checkpoint name (what a checkpoint may restore), and the
  // frozen ones a checkpoint must hold (a random-init base: nothing else can rebuild it).
  virtual TensorMap restorable_tensors() = 0;
  virtual TensorMap frozen_tensors_to_save() = 0;
  // What else the step's checkpoint records: the data position, `extra`, keys of `rng`.
  virtual void save_state(TrainerState& state) = 0;
  // Before a checkpoint's tensors are read: refuses one this run cannot continue.
  virtual void check_checkpoint(const TrainerState& state, const std::string& source) {}
  // After its tensors were read: the stage's own state from it.
  virtual void load_state(const TrainerState& state, const std::string& source) = 0;

  // After the last step and its checkpoint: the final evaluation, the export, the summary.
  virtual void finish(int64_t step) = 0;
};

// Every parameter of `model` by name, and the frozen ones alone (for the two checkpoint hooks
// above).
TensorMap parameters_by_name(torch::nn::Module& model);
TensorMap frozen_parameters(torch::nn::Module& model);

class TrainingLoop {
 public:
  // Checks that every rank runs the same recipe, creates the run directory (rank 0) and seeds
  // torch's generator with config.seed on every rank.
  TrainingLoop(LoopConfig config, dist::Communicator& comm);

  const LoopConfig& config() const { return config_; }
  dist::Communicator& comm() { return comm_; }
  bool rank0() const { return rank0_; }
  // stderr on rank 0; discards on the other ranks.
  std::ostream& log();
  // metrics.jsonl on rank 0 from run() on; nullptr on the other ranks and before.
  MetricsWriter* metrics() { return metrics_ ? &*metrics_ : nullptr; }
  int64_t step() const { return step_; }
  double lr_at(int64_t step) const;

  // The optimizer of the stage's trainable parameters; set while the stage is built.
  void set_optimizer(std::unique_ptr<Optimizer> optimizer);
  Optimizer& optimizer() { return *optimizer_; }
  // Frees the optimizer and what it holds (the ZeRO engine's shards) once training is over, e.g.
  // before an export that needs the memory; optimizer() is invalid afterwards.
  void release_optimizer() { optimizer_.reset(); }

  // Resumes (config.resume), trains to max_steps, writes the last checkpoint, and runs the
  // stage's finish() with no collective timeout.
  void run(TrainingStage& stage);

  // The checkpoint of the current step (collective). Returns its directory.
  std::filesystem::path save_checkpoint(TrainingStage& stage);

 private:
  void resume(TrainingStage& stage);
  void train(TrainingStage& stage);
  // Peak RSS of this rank and the largest over the ranks, in MiB (collective).
  std::pair<double, double> peak_rss() const;

  LoopConfig config_;
  dist::Communicator& comm_;
  const bool rank0_;
  std::ostream null_{nullptr};
  std::unique_ptr<Optimizer> optimizer_;
  std::optional<LrSchedule> schedule_;
  std::optional<MetricsWriter> metrics_;
  int64_t step_ = 0;
  int64_t last_checkpoint_step_ = -1;
};

// A stage's whole run: the loop, the stage built on it (model, data, optimizer), then resume,
// training and the stage's finish().
template <class Stage, class Recipe>
void run_stage(const Recipe& recipe, LoopConfig config, dist::Communicator& comm) {
  TrainingLoop loop(std::move(config), comm);
  Stage stage(recipe, loop);
  loop.run(stage);
}

}  // namespace tailor
