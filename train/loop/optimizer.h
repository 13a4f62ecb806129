// The update of a run's trainable parameters behind one interface, whoever holds their state:
//   replicated  plain AdamW (train/optim/adamw.h) on every rank: each rank keeps every trainable
//               parameter and its moments; gradients are summed over the ranks by one
//               all-reduce, and every rank takes the same step;
//   sharded     the ZeRO engine (train/zero/zero.h): optimizer state, from stage 2 the gradients
//               and at stage 3 the parameters too are split over the ranks.
// A step, as the training loop drives it (train/loop/training_loop.h):
//   forward/backward of each micro-batch, after_backward() after each one (ZeRO-2/3 reduce then);
//   reduce_gradients(): the gradients every rank sees are now summed over the ranks;
//   clipping (clip_global_norm below, or the stage's own, e.g. per user);
//   step(lr), zero_grad().
// Checkpoints: save() writes the step's checkpoint in the layout that fits (one file set written
// by rank 0, or a sharded checkpoint every rank writes its part of), and load() reads either.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/Tensor.h>

#include "dist/communicator.h"
#include "models/core/tensor_map.h"
#include "train/checkpoint/checkpoint.h"
#include "train/checkpoint/sharded_checkpoint.h"
#include "train/optim/adamw.h"
#include "train/zero/zero.h"

namespace tailor {

struct TrainableParameter {
  std::string name;  // its name in checkpoints and in the optimizer state
  at::Tensor param;
  bool decay = true;
};

class Optimizer {
 public:
  // Plain AdamW over `params`, replicated on every rank of `comm`.
  static std::unique_ptr<Optimizer> replicated(std::vector<TrainableParameter> params,
                                               const AdamWConfig& config, dist::Communicator& comm);
  // The ZeRO engine, which already holds the parameters it was built with.
  static std::unique_ptr<Optimizer> sharded(std::unique_ptr<dist::ZeroEngine> engine,
                                            dist::Communicator& comm);

  virtual ~Optimizer() = default;

  // The engine of a sharded optimizer; nullptr when replicated.
  virtual dist::ZeroEngine* engine() { return nullptr; }
  // After each micro-batch's backward pass.
  virtual void after_backward() {}
  // Once per step, after the last micro-batch: sums the gradients over the ranks.
  virtual void reduce_gradients() = 0;
  // The L2 norm of the summed gradient (after reduce_gradients; every rank gets the same).
  virtual double global_grad_norm() = 0;
  // Multiplies the summed gradients by `factor`.
  virtual void scale_gradients(double factor) = 0;
  virtual void step(double lr) = 0;
  virtual void zero_grad() = 0;
  // The trainable parameters' state this rank holds (parameters, gradients, AdamW).
  virtual dist::ModelStateBytes state_bytes() const = 0;

  // Writes the checkpoint of `state.step`: the trainable parameters and their AdamW state, plus
  // `frozen` (frozen tensors the checkpoint must hold, by name: a random-init base nothing else
  // can rebuild). `state.rng` gets every rank's RNG states as {"ranks": [...]}, except on one
  // process with replicated state, where it is that process's states (as before sharding
  // existed), plus whatever keys the caller put there. Collective. Returns the directory.
  virtual std::filesystem::path save(const std::filesystem::path& run_dir, const TensorMap& frozen,
                                     TrainerState state, int keep_last) = 0;
  // Restores the trainable parameters and their AdamW state from a checkpoint of either layout
  // and any world size, and whichever of `restorable` (every model tensor by checkpoint name,
  // frozen ones included) the checkpoint holds. A checkpoint tensor that is none of them, or of
  // another shape, and a trainable parameter it lacks, are errors naming the checkpoint.
  virtual void load(const dist::ShardedCheckpointReader& reader, const TensorMap& restorable) = 0;
};

// Clips the summed gradient to `max_norm` by its global L2 norm (as torch's clip_grad_norm_:
// factor max_norm / (norm + 1e-6) when below 1; max_norm 0 = no clipping); returns the norm.
double clip_global_norm(Optimizer& optimizer, double max_norm);

}  // namespace tailor
