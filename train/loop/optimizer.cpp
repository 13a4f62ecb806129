#include "train/loop/optimizer.h"

#include <cmath>
#include <set>

#include <torch/torch.h>

#include "common/error.h"
#include "common/shape_string.h"
#include "train/checkpoint/rng_state.h"
#include "train/optim/grad_clip.h"

namespace tailor {
namespace fs = std::filesystem;
namespace {

// The tensors of a checkpoint's model part that `restorable` lacks, or holds in another shape.
void check_model_tensor(const dist::ShardedCheckpointReader& reader, const dist::TensorInfo& info,
                        const at::Tensor* target) {
  if (!target)
    throw Error("checkpoint",
                reader.dir().string() + ": tensor " + info.name + " is not in the model");
  if (target->sizes().vec() != info.shape)
    throw Error("checkpoint", reader.dir().string() + ": " + info.name + " has shape " +
                                  shape_string(info.shape) + ", the model expects " +
                                  shape_string(target->sizes()));
}

const at::Tensor* find_tensor(const TensorMap& map, const std::string& name) {
  const auto it = map.find(name);
  return it == map.end() ? nullptr : &it->second;
}

class Replicated final : public Optimizer {
 public:
  Replicated(std::vector<TrainableParameter> params, const AdamWConfig& config,
             dist::Communicator& comm)
      : params_(std::move(params)), adam_(config), comm_(comm) {
    for (const auto& p : params_) {
      adam_.add_param(p.name, p.param, p.decay);
      tensors_.push_back(p.param);
    }
  }

  void reduce_gradients() override {
    if (comm_.world_size() == 1) return;
    // One all-reduce over every gradient, in float32 (float64 for float64 parameters).
    std::vector<at::Tensor> flat;
    for (const auto& p : tensors_) {
      const auto dtype = p.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
      flat.push_back(p.grad().defined() ? p.grad().to(dtype).reshape({-1})
                                        : at::zeros({p.numel()}, dtype));
    }
    at::Tensor all = at::cat(flat).to(comm_.device());
    comm_.all_reduce_sum(all);
    all = all.cpu();
    int64_t offset = 0;
    torch::NoGradGuard no_grad;
    for (const auto& p : tensors_) {
      const at::Tensor summed = all.narrow(0, offset, p.numel()).view(p.sizes()).to(p.dtype());
      if (p.grad().defined())
        p.mutable_grad().copy_(summed);
      else
        p.mutable_grad() = summed.clone();
      offset += p.numel();
    }
  }

  double global_grad_norm() override { return grad_norm(tensors_); }

  void scale_gradients(double factor) override {
    at::NoGradGuard no_grad;
    for (const auto& p : tensors_) {
      const at::Tensor& g = p.grad();
      if (g.defined()) g.mul_(factor);
    }
  }

  void step(double lr) override { adam_.step(lr); }
  void zero_grad() override { adam_.zero_grad(); }

  // Every rank holds every trainable parameter, its gradient and AdamW's two moments (in the
  // weights' dtype, float32 for low-precision weights, which also get a float32 master copy).
  dist::ModelStateBytes state_bytes() const override {
    dist::ModelStateBytes bytes;
    for (const auto& p : tensors_) {
      const int64_t n = p.numel(), size = static_cast<int64_t>(p.element_size());
      bytes.params += n * size;
      bytes.grads += n * size;
      bytes.optimizer += n * (size < 4 ? 2 * 4 + 4 : 2 * size);
    }
    return bytes;
  }

  fs::path save(const fs::path& run_dir, const TensorMap& frozen, TrainerState state,
                int keep_last) override {
    const nlohmann::json mine = capture_torch_rng_states();
    if (comm_.world_size() == 1) {
      for (const auto& [key, value] : mine.items())
        state.rng[key] = value;
    } else {
      state.rng["ranks"] = nlohmann::json::array();
      for (const auto& s : comm_.all_gather_strings(mine.dump()))
        state.rng["ranks"].push_back(nlohmann::json::parse(s));
    }
    fs::path dir = checkpoints_root(run_dir) / checkpoint_dir_name(state.step);
    if (comm_.rank() == 0) {
      TensorMap tensors = frozen;
      for (const auto& p : params_)
        tensors[p.name] = p.param;
      SaveCheckpointOptions options;
      options.keep_last = keep_last;
      dir = save_checkpoint(run_dir, tensors, adam_.export_state(), state, options);
    }
    comm_.barrier();
    return dir;
  }

  void load(const dist::ShardedCheckpointReader& reader, const TensorMap& restorable) override {
    TensorMap optimizer_state;
    std::set<std::string> found;
    at::NoGradGuard no_grad;
    for (const auto& info : reader.tensors()) {
      if (info.kind == "optimizer") {
        optimizer_state[info.name] = reader.read(info.name);
        continue;
      }
      const at::Tensor* target = find_tensor(restorable, info.name);
      check_model_tensor(reader, info, target);
      const_cast<at::Tensor*>(target)->copy_(reader.read(info.name));
      found.insert(info.name);
    }
    for (const auto& p : params_)
      if (!found.count(p.name))
        throw Error("checkpoint", reader.dir().string() + ": the checkpoint lacks " + p.name);
    adam_.import_state(optimizer_state);
  }

 private:
  std::vector<TrainableParameter> params_;
  std::vector<at::Tensor> tensors_;  // params_' tensors, in order
  AdamW adam_;
  dist::Communicator& comm_;
};

class Sharded final : public Optimizer {
 public:
  Sharded(std::unique_ptr<dist::ZeroEngine> engine, dist::Communicator& comm)
      : engine_(std::move(engine)), comm_(comm) {
    for (const auto& info : engine_->checkpoint_tensors(/*include_frozen=*/true))
      if (info.kind == "model") held_.insert(info.name);
    for (const auto& info : engine_->checkpoint_tensors(/*include_frozen=*/false))
      if (info.kind == "model") trainable_.insert(info.name);
  }

  dist::ZeroEngine* engine() override { return engine_.get(); }
  void after_backward() override { engine_->after_backward(); }
  void reduce_gradients() override { norm_ = engine_->reduce_gradients(); }
  double global_grad_norm() override { return norm_; }
  void scale_gradients(double factor) override { engine_->scale_gradients(factor); }
  void step(double lr) override { engine_->step(lr); }
  void zero_grad() override { engine_->zero_grad(); }
  dist::ModelStateBytes state_bytes() const override { return engine_->state_bytes(); }

  fs::path save(const fs::path& run_dir, const TensorMap& frozen, TrainerState state,
                int keep_last) override {
    state.rng = capture_torch_rng_states();  // gathered into {"ranks": [...]} by the save
    // Frozen tensors the engine holds are written from its shards; others (a frozen base outside
    // the engine) whole, by rank 0.
    bool include_frozen = false;
    for (const auto& [name, t] : frozen)
      include_frozen = include_frozen || (held_.count(name) && !trainable_.count(name));
    std::vector<dist::TensorInfo> tensors = engine_->checkpoint_tensors(include_frozen);
    std::vector<dist::ShardPiece> pieces = engine_->checkpoint_pieces(include_frozen);
    for (const auto& [name, t] : frozen) {
      if (held_.count(name)) continue;
      tensors.push_back({name, t.scalar_type(), t.sizes().vec(), "model"});
      if (comm_.rank() == 0) pieces.push_back({name, 0, t.detach().contiguous().reshape({-1})});
    }
    dist::SaveShardedOptions options;
    options.keep_last = keep_last;
    return dist::save_sharded_checkpoint(comm_, run_dir, tensors, pieces, state, options);
  }

  void load(const dist::ShardedCheckpointReader& reader, const TensorMap& restorable) override {
    bool include_frozen = false;
    at::NoGradGuard no_grad;
    for (const auto& info : reader.tensors()) {
      if (info.kind == "optimizer") continue;
      if (held_.count(info.name)) {  // the engine reads its own part
        include_frozen = include_frozen || !trainable_.count(info.name);
        continue;
      }
      const at::Tensor* target = find_tensor(restorable, info.name);
      check_model_tensor(reader, info, target);
      const_cast<at::Tensor*>(target)->copy_(reader.read(info.name));
    }
    engine_->load_checkpoint(reader, include_frozen);
  }

 private:
  std::unique_ptr<dist::ZeroEngine> engine_;
  dist::Communicator& comm_;
  std::set<std::string> held_;       // model tensors the engine holds
  std::set<std::string> trainable_;  // of those, the trainable ones
  double norm_ = 0;
};

}  // namespace

std::unique_ptr<Optimizer> Optimizer::replicated(std::vector<TrainableParameter> params,
                                                 const AdamWConfig& config,
                                                 dist::Communicator& comm) {
  return std::make_unique<Replicated>(std::move(params), config, comm);
}

std::unique_ptr<Optimizer> Optimizer::sharded(std::unique_ptr<dist::ZeroEngine> engine,
                                              dist::Communicator& comm) {
  return std::make_unique<Sharded>(std::move(engine), comm);
}

double clip_global_norm(Optimizer& optimizer, double max_norm) {
  const double norm = optimizer.global_grad_norm();
  if (max_norm > 0 && std::isfinite(norm)) {
    const double coef = max_norm / (norm + 1e-6);  // as torch's clip_grad_norm_
    if (coef < 1.0) optimizer.scale_gradients(coef);
  }
  return norm;
}

}  // namespace tailor
