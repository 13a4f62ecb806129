// ZeRO data parallelism (Rajbhandari et al. 2019, "ZeRO: Memory Optimizations Toward Training
// Trillion Parameter Models"), our own implementation over dist::Communicator.
//
// Parameters are packed into flat buffers ("flats"), each padded to a multiple of the world size
// and split into world-size equal chunks; rank r owns chunk r of every flat. Stages:
//   0  every rank holds everything; gradients are all-reduced bucket by bucket (each flat is a
//      bucket of at most bucket_bytes) and every rank runs the whole AdamW update;
//   1  the fp32 master weights and AdamW moments exist only for the owned chunks; gradients are
//      reduce-scattered after the last micro-batch, each rank updates its chunk, and the
//      parameters are all-gathered;
//   2  as 1, but gradients are reduce-scattered bucket by bucket during backward (an autograd
//      post-hook on each parameter's gradient accumulator) into a chunk-sized accumulator, so the
//      full gradient never persists;
//   3  as 2, and the parameters themselves (frozen ones included) live only as owned chunks: a
//      flat per model hook group (models/core/forward_hooks.h; GPT-2: the embeddings + ln_f, and
//      one per transformer block) is all-gathered just before its forward, freed after it, gathered
//      again when backward reaches it and freed once its gradients are reduced. Freeing releases
//      the gathered buffer's storage itself (as FSDP resizes its flat parameter's storage to 0),
//      so views autograd saved for backward cannot keep it alive; gathering again refills the
//      same storage, which those views then read. With overlap, gathers run ahead on a
//      communication thread and gradient reduce-scatters run behind backward.
// Gradients are summed across ranks (the trainer normalizes the loss by the global token count).
//
// Per-rank model-state bytes then follow the paper's formulas (its section 3) with our byte sizes
// (fp32: weights 4 + grads 4 + moments 8; bf16: 2 + 2 + master and moments 12), plus padding and,
// at stage 3, the gathered groups; state_bytes() measures the tensors actually held. Traffic per
// step (CommStats): 2Ψ for stages 0-2, 3Ψ for stage 3 (per micro-batch for gradient traffic).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/Tensor.h>

#include "dist/communicator.h"
#include "models/core/forward_hooks.h"
#include "train/checkpoint/sharded_checkpoint.h"
#include "train/optim/adamw.h"

namespace tailor::dist {

struct ZeroConfig {
  int stage = 0;                             // 0..3
  int64_t bucket_bytes = int64_t{25} << 20;  // stages 0-2: size of a gradient/parameter bucket
  AdamWConfig adam;
  // Stage 3: collectives run on a communication thread (dist/comm_thread.h): while a block
  // computes, the next `prefetch` blocks' parameters are gathered (forward and backward), and a
  // flat's gradients are reduce-scattered as soon as backward has produced them. false: every
  // collective blocks where it is issued. Both give bit-identical results.
  bool overlap = false;
  int prefetch = 1;
};

struct ZeroParam {
  std::string name;
  at::Tensor param;   // the model's parameter; trainable when it requires grad
  bool decay = true;  // weight decay applies (trainable parameters)
  // Stage 3 only: the values are not set (param has its shape and dtype but is never read, e.g.
  // uninitialised memory nobody touched); the caller writes this rank's part with
  // ZeroEngine::fill_parameters. This is how a model larger than one process is built.
  bool deferred = false;
};

// One parameter's part owned by this rank at stage 3 (ZeroEngine::fill_parameters): `dst`, a
// view into the rank's shard, receives elements [begin, begin + dst.numel()) of the flattened
// parameter; it may be empty (the rank owns none of it).
struct ParameterPart {
  const std::string& name;
  const std::vector<int64_t>& shape;
  int64_t begin;
  at::Tensor dst;
};

// One trainable parameter's part of the reduced gradient owned by this rank
// (ZeroEngine::for_each_owned_gradient): `grad`, a writable view into the engine's gradient,
// holds elements [begin, begin + grad.numel()) of the flattened parameter's gradient. Stage 0
// owns every element.
struct GradientPart {
  const std::string& name;
  const std::vector<int64_t>& shape;
  int64_t begin;
  at::Tensor grad;
};

struct ModelStateBytes {
  int64_t params = 0;     // parameter storage held (flats at stages 0-2, owned chunks at 3)
  int64_t grads = 0;      // gradient storage held between micro-batches
  int64_t optimizer = 0;  // fp32 master copies + AdamW moments
  int64_t total() const { return params + grads + optimizer; }
};

class ZeroEngine : public ForwardHooks {
 public:
  // `params`: every parameter of the model (the engine takes over their storage). `groups`: the
  // model's hook groups by parameter name (stage 3 needs them; stages 0-2 ignore them). After
  // construction, at stage 3 the parameters are empty until a forward gathers them: install the
  // engine as the model's ForwardHooks.
  ZeroEngine(Communicator& comm, std::vector<ZeroParam> params,
             const std::vector<std::vector<std::string>>& groups, ZeroConfig config);
  ~ZeroEngine() override;
  ZeroEngine(const ZeroEngine&) = delete;
  ZeroEngine& operator=(const ZeroEngine&) = delete;

  int stage() const;
  int64_t step_count() const;
  int64_t trainable_numel() const;  // Ψ: trainable parameters (unpadded)
  int64_t frozen_numel() const;

  // After each micro-batch's backward: stages 2-3 reduce what is still pending and (3) free every
  // gathered group.
  void after_backward();
  // After the step's last micro-batch: finishes the gradient reduction (stage 0 all-reduce,
  // stage 1 reduce-scatter) and returns the L2 norm of the summed gradient (all ranks agree).
  double reduce_gradients();
  // Multiplies the reduced gradients by `factor` (gradient clipping).
  void scale_gradients(double factor);
  // After reduce_gradients: calls `visit` for each trainable parameter of which this rank owns
  // elements, in the order the constructor got them, with that part of the reduced gradient
  // (read or scale it in place, e.g. for a norm over a slice of parameters that the flat chunks
  // cut arbitrarily: partial sums here, all-reduced by the caller). Local: no collective.
  void for_each_owned_gradient(const std::function<void(const GradientPart&)>& visit);
  // One AdamW step with learning rate `lr` on the owned chunks; stages 1-2 then all-gather the
  // parameters. Weight decay as train/optim/adamw.h.
  void step(double lr);
  // Zeroes the gradients for the next step.
  void zero_grad();

  // Checkpoint contents: parameters (trainable always, frozen when include_frozen) under their
  // names and the AdamW state as AdamW::export_state() names it, so sharded and single-process
  // checkpoints hold the same tensors. Each rank contributes its owned chunks.
  std::vector<TensorInfo> checkpoint_tensors(bool include_frozen) const;
  std::vector<ShardPiece> checkpoint_pieces(bool include_frozen) const;
  // Restores parameters (frozen ones only when include_frozen) and optimizer state from any
  // checkpoint the reader opens, whatever world size saved it.
  void load_checkpoint(const ShardedCheckpointReader& reader, bool include_frozen);

  ModelStateBytes state_bytes() const;

  // Stage 3: switches the communication thread on or off between steps (config.overlap), e.g.
  // to time both on one model. Results do not depend on it.
  void set_overlap(bool overlap);

  // Stage 3: calls `fill` once per parameter, in the order the constructor got them, with the
  // part this rank owns, then refreshes the float32 master copies of low-precision weights.
  // Random initialisation draws each whole parameter and keeps its part (so the values do not
  // depend on the world size); a checkpoint loader reads only the part's bytes.
  void fill_parameters(const std::function<void(const ParameterPart&)>& fill);

  // ForwardHooks, used at stage 3.
  void enter(int group, const at::Tensor& activation) override;
  void exit(int group, const at::Tensor& activation) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tailor::dist
