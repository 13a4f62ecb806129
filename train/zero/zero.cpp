#include "train/zero/zero.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/csrc/autograd/variable.h>

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

#include "common/error.h"
#include "common/shape_string.h"
#include "dist/comm_thread.h"

namespace tailor::dist {

namespace {

constexpr const char* kZeroScope = "zero";

// Calls back after a parameter's gradient accumulator has run, i.e. once .grad holds this
// backward's full gradient (the hook c10d's DDP reducer uses too).
class AfterAccumulate : public torch::autograd::FunctionPostHook {
 public:
  explicit AfterAccumulate(std::function<void()> fn) : fn_(std::move(fn)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    fn_();
    return outputs;
  }

 private:
  std::function<void()> fn_;
};

int64_t round_up(int64_t n, int64_t m) {
  return (n + m - 1) / m * m;
}

// A gathered buffer is freed by releasing its storage's memory, not by dropping the tensor:
// every view of it (parameters, and tensors autograd saved for backward) shares the storage, and
// refilling the same storage later makes those views valid again.
void free_storage(const at::Tensor& t) {
  c10::StorageImpl* storage = t.storage().unsafeGetStorageImpl();
  storage->set_data_ptr_noswap(at::DataPtr(nullptr, storage->device()));
  storage->set_nbytes(0);
}
bool storage_allocated(const at::Tensor& t) {
  return t.storage().nbytes() > 0;
}
// On the CPU a gathered buffer is its own anonymous mapping: malloc would serve it from the heap
// (tailor's main() keeps freed memory there for speed), and a hole in the middle of the heap
// stays resident, so every block gathered would stay in RSS. One freed mapping is kept for the
// next gather of the same size (the next block's), since mapping fresh memory costs a page fault
// and the kernel zeroing every page (436 MB per Mistral-7B block); others go
// back to the system. Buffers under kMappedBytes (LoRA factors, small models) come from malloc.
constexpr size_t kPooledMappings = 1;
constexpr size_t kMappedBytes = size_t{16} << 20;
struct MappingPool {
  std::mutex mutex;
  std::vector<std::pair<void*, size_t>> free;
};
MappingPool& mapping_pool() {
  static MappingPool* pool = new MappingPool();  // never destroyed: deleters may run at exit
  return *pool;
}
void unmap_buffer(void* context) {
  auto* region = static_cast<std::pair<void*, size_t>*>(context);
  {
    MappingPool& pool = mapping_pool();
    std::lock_guard<std::mutex> lock(pool.mutex);
    if (pool.free.size() < kPooledMappings) {
      pool.free.push_back(*region);
      delete region;
      return;
    }
  }
  munmap(region->first, region->second);
  delete region;
}
at::DataPtr map_buffer(size_t bytes) {
  void* p = nullptr;
  {
    MappingPool& pool = mapping_pool();
    std::lock_guard<std::mutex> lock(pool.mutex);
    for (auto it = pool.free.begin(); it != pool.free.end(); ++it) {
      if (it->second != bytes) continue;
      p = it->first;
      pool.free.erase(it);
      break;
    }
  }
  if (p == nullptr) {
    p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
      throw Error(kZeroScope, "cannot map " + std::to_string(bytes) +
                                  " bytes for a gathered block: " + std::strerror(errno));
  }
  return at::DataPtr(p, new std::pair<void*, size_t>(p, bytes), &unmap_buffer,
                     at::Device(at::kCPU));
}
void allocate_storage(const at::Tensor& t) {
  c10::StorageImpl* storage = t.storage().unsafeGetStorageImpl();
  const size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
  storage->set_data_ptr_noswap(t.is_cpu() && bytes >= kMappedBytes
                                   ? map_buffer(bytes)
                                   : storage->allocator()->allocate(bytes));
  storage->set_nbytes(bytes);
}
// Another tensor on the same storage with its own version counter: collectives write through
// it, so refilling a released buffer does not count as an in-place change of the views
// autograd saved.
at::Tensor alias_of(const at::Tensor& t) {
  at::Tensor alias = at::empty({0}, t.options());
  alias.set_(t.storage(), 0, t.sizes(), t.strides());
  return alias;
}

}  // namespace

// One parameter's place in a flat.
struct Slot {
  int param = 0;       // index into Impl::params
  int64_t offset = 0;  // first element in the flat
  int64_t numel = 0;
  std::vector<int64_t> shape;  // kept: at stage 3 the live parameter is empty when released
};

// A range of a flat's owned elements that one AdamW call updates (one parameter's part).
struct Segment {
  int64_t begin = 0;  // in flat coordinates
  int64_t length = 0;
  bool decay = true;
};

struct Flat {
  std::vector<Slot> slots;
  bool trainable = false;
  at::ScalarType dtype = at::kFloat;
  at::TensorOptions options;  // dtype and device of the parameters
  int64_t numel = 0, padded = 0, chunk = 0;
  int group = -1;  // stage 3: its hook group

  at::Tensor full;        // padded parameters; params are views into it (stage 3: while gathered;
                          // its storage is released in between)
  at::Tensor full_alias;  // stage 3: the same storage, written by the all-gather
  at::Tensor shard;       // stage 3: this rank's chunk of the parameters

  // Optimizer range: the elements this rank updates, [own_begin, own_begin + own_len).
  int64_t own_begin = 0, own_len = 0;
  std::vector<Segment> segments;
  at::Tensor master, exp_avg, exp_avg_sq;  // own_len elements each (master: low precision)

  at::Tensor grad_full;   // stages 0-1: padded gradients; params' .grad are views into it
  at::Tensor grad_shard;  // stages 1-3: the reduced gradient of this rank's chunk
  at::Tensor staging;     // stages 2-3: gradients of the current backward, until reduced
  int arrived = 0;        // stages 2-3: parameters whose gradient is in `staging`
  int expected = 0;       // trainable slots
  bool reduced = false;   // stages 2-3: this backward's gradients have been reduced

  // Chunk r of the partition, clipped to the unpadded elements.
  std::pair<int64_t, int64_t> chunk_range(int rank) const {
    const int64_t begin = std::min(numel, rank * chunk);
    return {begin, std::min(numel, (rank + 1) * chunk) - begin};
  }
};

// The elements of slot `s` inside [begin, begin + length), as [first, last); empty when last <=
// first.
std::pair<int64_t, int64_t> overlap(const Slot& s, int64_t begin, int64_t length) {
  return {std::max(begin, s.offset), std::min(begin + length, s.offset + s.numel)};
}

struct Group {
  std::vector<int> flats;
  bool gathered = false;             // the parameters are views of the gathered flats
  std::shared_future<void> pending;  // an all-gather queued on the communication thread
  bool release_pending = false;      // backward is past it; free once its gradients have arrived
};

struct ZeroEngine::Impl {
  Communicator& comm;
  ZeroConfig config;
  int rank = 0, world = 1;
  std::vector<ZeroParam> params;
  std::vector<Flat> flats;
  std::vector<Group> groups;  // stage 3
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;
  std::vector<bool> deferred;               // per parameter: values come from fill_parameters
  std::unique_ptr<CommThread> comm_thread;  // stage 3 with overlap
  AdamWScratch scratch;
  int64_t step = 0;

  Impl(Communicator& c, ZeroConfig cfg) : comm(c), config(cfg) {}

  // Where the parameters (and so the gradients and optimizer state) live.
  at::Device device() const {
    return flats.empty() ? at::Device(at::kCPU) : flats.front().options.device();
  }

  static at::Tensor param_view(const Slot& s, const at::Tensor& buffer) {
    return buffer.narrow(0, s.offset, s.numel).view(s.shape);
  }

  // Packs the given parameters into a new flat whose buffer takes over their values.
  int add_flat(const std::vector<int>& members, bool trainable, int group) {
    Flat f;
    f.trainable = trainable;
    f.group = group;
    f.dtype = params[members.front()].param.scalar_type();
    for (int i : members) {
      const at::Tensor& p = params[i].param;
      if (p.scalar_type() != f.dtype)
        throw Error(kZeroScope, "parameters " + params[members.front()].name + " and " +
                                    params[i].name + " differ in dtype; ZeRO needs one dtype");
      f.slots.push_back({i, f.numel, p.numel(), p.sizes().vec()});
      f.numel += p.numel();
    }
    // Padded to a multiple of the world size so every rank owns an equal chunk.
    f.padded = round_up(std::max<int64_t>(f.numel, 1), world);
    f.chunk = f.padded / world;
    const auto options = params[members.front()].param.options();
    f.options = options;
    at::NoGradGuard no_grad;
    if (config.stage == 3) {
      // Only this rank's chunk is ever allocated here; the full buffer gets memory while gathered.
      f.shard = at::zeros({f.chunk}, options);
      const auto [chunk_begin, chunk_len] = f.chunk_range(rank);
      for (const auto& s : f.slots) {
        const auto [b, e] = overlap(s, chunk_begin, chunk_len);
        if (e > b && !deferred[s.param])
          f.shard.narrow(0, b - rank * f.chunk, e - b)
              .copy_(params[s.param].param.reshape({-1}).narrow(0, b - s.offset, e - b));
        params[s.param].param.set_data(at::empty({0}, options));
      }
      f.full = at::empty({f.padded}, options);  // never written: costs address space only
      f.full_alias = alias_of(f.full);          // before the release: set_ would re-allocate it
      free_storage(f.full);
    } else {
      f.full = at::zeros({f.padded}, options);
      for (const auto& s : f.slots) {
        f.full.narrow(0, s.offset, s.numel).copy_(params[s.param].param.reshape({-1}));
        params[s.param].param.set_data(param_view(s, f.full));
      }
    }
    if (trainable) {
      f.expected = static_cast<int>(f.slots.size());
      if (config.stage == 0) {
        f.own_begin = 0;
        f.own_len = f.numel;
      } else {
        std::tie(f.own_begin, f.own_len) = f.chunk_range(rank);
      }
      for (const auto& s : f.slots) {
        const auto [b, e] = overlap(s, f.own_begin, f.own_len);
        if (e > b) f.segments.push_back({b, e - b, params[s.param].decay});
      }
      const bool low_precision = f.dtype == at::kBFloat16 || f.dtype == at::kHalf;
      const auto state_options = options.dtype(low_precision ? at::kFloat : f.dtype);
      if (low_precision) f.master = at::empty({f.own_len}, state_options);
      refresh_master(f);
      f.exp_avg = at::zeros({f.own_len}, state_options);
      f.exp_avg_sq = at::zeros({f.own_len}, state_options);
    }
    flats.push_back(std::move(f));
    return static_cast<int>(flats.size()) - 1;
  }

  // The float32 master copy of low-precision weights follows the weights.
  void refresh_master(Flat& f) {
    if (f.master.defined()) f.master.copy_(weights_low(f));
  }

  void update(Flat& f, double lr);  // AdamW on the owned range

  // Where each parameter lives: {flat, slot} by parameter index ({-1, -1}: in no flat).
  std::vector<std::pair<int, int>> param_slots() const {
    std::vector<std::pair<int, int>> where(params.size(), {-1, -1});
    for (size_t fi = 0; fi < flats.size(); ++fi)
      for (size_t si = 0; si < flats[fi].slots.size(); ++si)
        where[flats[fi].slots[si].param] = {static_cast<int>(fi), static_cast<int>(si)};
    return where;
  }

  // ---- weights and gradients of the owned range (optimizer coordinates) ----
  at::Tensor weights_low(Flat& f) {  // the parameter dtype's owned elements
    return config.stage == 3 ? f.shard.narrow(0, f.own_begin - rank * f.chunk, f.own_len)
                             : f.full.narrow(0, f.own_begin, f.own_len);
  }
  at::Tensor owned_grad(Flat& f) {
    if (config.stage == 0) return f.grad_full.narrow(0, 0, f.own_len);
    return f.grad_shard.narrow(0, f.own_begin - rank * f.chunk, f.own_len);
  }

  // ---- stage 3: gather / release ----
  // Queues (overlap) or runs the all-gather of group g into its flats' storage; a no-op when the
  // group is gathered or already on its way.
  void start_gather(int g) {
    Group& group = groups.at(g);
    if (group.gathered || group.pending.valid()) return;
    std::vector<std::pair<at::Tensor, at::Tensor>> work;  // (shard, full_alias)
    for (int fi : group.flats) {
      Flat& f = flats[fi];
      if (!storage_allocated(f.full)) allocate_storage(f.full);
      work.emplace_back(f.shard, f.full_alias);
    }
    Communicator* c = &comm;
    auto gather_all = [c, work] {
      at::NoGradGuard no_grad;
      for (const auto& [shard, full] : work) {
        at::Tensor out = full;
        c->all_gather(shard, out);
      }
    };
    if (comm_thread) {
      group.pending = comm_thread->submit(std::move(gather_all));
    } else {
      gather_all();
    }
  }
  void gather(int g) {
    Group& group = groups.at(g);
    if (group.gathered) return;
    start_gather(g);
    if (group.pending.valid()) {
      group.pending.get();  // rethrows the collective's error
      group.pending = std::shared_future<void>();
    }
    at::NoGradGuard no_grad;
    for (int fi : group.flats) {
      Flat& f = flats[fi];
      for (const auto& s : f.slots)
        params[s.param].param.set_data(param_view(s, f.full));
    }
    group.gathered = true;
    group.release_pending = false;
  }
  // Gathers the `prefetch` groups after g in the direction of travel (forward: g+1, g+2, ...;
  // backward: g-1, ...) ahead of use. Only the blocks 1..n-1 take part: group 0 (embeddings,
  // final norm, head) is entered around the whole model, out of the blocks' order.
  void prefetch_after(int g, int direction) {
    if (!comm_thread || g < 1) return;
    for (int k = 1; k <= config.prefetch; ++k) {
      const int next = g + direction * k;
      if (next < 1 || next >= static_cast<int>(groups.size())) break;
      start_gather(next);
    }
  }
  void release(int g) {
    Group& group = groups.at(g);
    if (group.pending.valid()) {  // prefetched but never used: let the collective finish
      group.pending.get();
      group.pending = std::shared_future<void>();
    }
    for (int fi : group.flats) {
      Flat& f = flats[fi];
      if (group.gathered)
        for (const auto& s : f.slots)
          params[s.param].param.set_data(at::empty({0}, f.shard.options()));
      if (storage_allocated(f.full)) free_storage(f.full);
    }
    group.gathered = false;
    group.release_pending = false;
  }
  bool gradients_in(const Group& group) const {
    for (int fi : group.flats)
      if (flats[fi].trainable && !flats[fi].reduced) return false;
    return true;
  }

  // ---- stages 2-3: gradients arrive one parameter at a time ----
  void on_gradient(int fi, int slot_index) {
    Flat& f = flats[fi];
    const Slot& s = f.slots[slot_index];
    at::Tensor& grad = params[s.param].param.mutable_grad();
    if (!grad.defined()) return;
    at::NoGradGuard no_grad;
    if (!f.staging.defined()) f.staging = at::zeros({f.padded}, grad.options());
    f.staging.narrow(0, s.offset, s.numel).add_(grad.reshape({-1}));
    grad.reset();  // the full gradient does not persist
    if (++f.arrived == f.expected) reduce_staging(fi);
  }
  void reduce_staging(int fi) {
    Flat& f = flats[fi];
    // The communication thread owns `staging` and `grad_shard` until drained (after_backward).
    Communicator* c = &comm;
    auto reduce = [c, staging = f.staging, grad_shard = f.grad_shard, chunk = f.chunk] {
      at::NoGradGuard no_grad;
      at::Tensor part = at::empty({chunk}, staging.options());
      c->reduce_scatter_sum(staging, part);
      at::Tensor sum = grad_shard;
      sum.add_(part);
    };
    if (comm_thread) {
      comm_thread->submit(std::move(reduce));
    } else {
      reduce();
    }
    f.staging = at::Tensor();
    f.arrived = 0;
    f.reduced = true;
    if (f.group >= 0) {
      Group& group = groups[f.group];
      if (group.release_pending && gradients_in(group)) release(f.group);
    }
  }
};

ZeroEngine::ZeroEngine(Communicator& comm, std::vector<ZeroParam> params,
                       const std::vector<std::vector<std::string>>& groups, ZeroConfig config)
    : impl_(std::make_unique<Impl>(comm, config)) {
  Impl& m = *impl_;
  if (config.stage < 0 || config.stage > 3)
    throw Error(kZeroScope, "zero stage must be 0, 1, 2 or 3, got " + std::to_string(config.stage));
  m.rank = comm.rank();
  m.world = comm.world_size();
  m.params = std::move(params);
  for (const auto& p : m.params) {
    if (!p.param.is_contiguous())
      throw Error(kZeroScope, "parameter " + p.name + " is not contiguous");
    if (p.deferred && config.stage != 3)
      throw Error(kZeroScope, "parameter " + p.name +
                                  " has no values yet; only stage 3 builds parameters from parts");
    m.deferred.push_back(p.deferred);
  }
  if (config.prefetch < 0)
    throw Error(kZeroScope, "prefetch must be >= 0, got " + std::to_string(config.prefetch));
  if (config.stage == 3 && config.overlap && comm.device().is_cuda())
    throw Error(kZeroScope, "overlap runs collectives on a CPU communication thread (MPI); with " +
                                comm.backend() + " on " + comm.device().str() +
                                " they are already queued on the GPU stream: set overlap false");
  if (config.stage == 3 && config.overlap) m.comm_thread = std::make_unique<CommThread>();

  // Gradient accumulators record the parameter's shape when created, so they are made while
  // every parameter still has its full shape (stage 3 empties them below).
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulator_of(m.params.size());
  if (config.stage >= 2)
    for (size_t i = 0; i < m.params.size(); ++i)
      if (m.params[i].param.requires_grad())
        accumulator_of[i] = torch::autograd::impl::grad_accumulator(m.params[i].param);

  if (config.stage == 3) {
    std::map<std::string, int> index;
    for (size_t i = 0; i < m.params.size(); ++i)
      index[m.params[i].name] = static_cast<int>(i);
    std::set<int> seen;
    for (size_t g = 0; g < groups.size(); ++g) {
      std::vector<int> trainable, frozen;
      for (const auto& name : groups[g]) {
        auto it = index.find(name);
        if (it == index.end()) continue;  // a name the caller chose not to manage
        if (!seen.insert(it->second).second)
          throw Error(kZeroScope, "parameter " + name + " is in two hook groups");
        (m.params[it->second].param.requires_grad() ? trainable : frozen).push_back(it->second);
      }
      Group group;
      if (!trainable.empty()) group.flats.push_back(m.add_flat(trainable, true, g));
      if (!frozen.empty()) group.flats.push_back(m.add_flat(frozen, false, g));
      m.groups.push_back(std::move(group));
    }
    for (size_t i = 0; i < m.params.size(); ++i)
      if (!seen.count(static_cast<int>(i)))
        throw Error(kZeroScope, "parameter " + m.params[i].name +
                                    " is in no hook group of the model; stage 3 cannot manage it");
  } else {
    // Buckets of trainable parameters in model order, at most bucket_bytes each (one larger
    // parameter is a bucket of its own); frozen parameters in buckets of their own.
    for (bool trainable : {true, false}) {
      std::vector<int> bucket;
      int64_t bytes = 0;
      for (size_t i = 0; i < m.params.size(); ++i) {
        const at::Tensor& p = m.params[i].param;
        if (p.requires_grad() != trainable) continue;
        const int64_t n = p.numel() * static_cast<int64_t>(p.element_size());
        const bool dtype_change =
            !bucket.empty() && m.params[bucket.front()].param.scalar_type() != p.scalar_type();
        if (!bucket.empty() && (bytes + n > config.bucket_bytes || dtype_change)) {
          m.add_flat(bucket, trainable, -1);
          bucket.clear();
          bytes = 0;
        }
        bucket.push_back(static_cast<int>(i));
        bytes += n;
      }
      if (!bucket.empty()) m.add_flat(bucket, trainable, -1);
    }
  }

  // Stages 2-3 reduce each flat as soon as its last gradient has been accumulated.
  if (config.stage >= 2) {
    for (size_t fi = 0; fi < m.flats.size(); ++fi) {
      const Flat& f = m.flats[fi];
      if (!f.trainable) continue;
      for (size_t si = 0; si < f.slots.size(); ++si) {
        auto accumulator = accumulator_of[f.slots[si].param];
        Impl* impl = impl_.get();
        const int flat_index = static_cast<int>(fi), slot_index = static_cast<int>(si);
        accumulator->add_post_hook(std::make_unique<AfterAccumulate>(
            [impl, flat_index, slot_index] { impl->on_gradient(flat_index, slot_index); }));
        m.accumulators.push_back(std::move(accumulator));  // keeps the hooked node alive
      }
    }
  }
  zero_grad();
}

ZeroEngine::~ZeroEngine() = default;

int ZeroEngine::stage() const {
  return impl_->config.stage;
}
int64_t ZeroEngine::step_count() const {
  return impl_->step;
}

int64_t ZeroEngine::trainable_numel() const {
  int64_t n = 0;
  for (const auto& f : impl_->flats)
    if (f.trainable) n += f.numel;
  return n;
}

int64_t ZeroEngine::frozen_numel() const {
  int64_t n = 0;
  for (const auto& f : impl_->flats)
    if (!f.trainable) n += f.numel;
  return n;
}

void ZeroEngine::zero_grad() {
  Impl& m = *impl_;
  at::NoGradGuard no_grad;
  for (auto& f : m.flats) {
    if (!f.trainable) continue;
    if (m.config.stage <= 1) {
      // Gradients accumulate in place into views of one buffer (AccumulateGrad adds into a
      // defined .grad), so the all-reduce / reduce-scatter needs no packing.
      if (!f.grad_full.defined()) f.grad_full = at::zeros({f.padded}, f.full.options());
      f.grad_full.zero_();
      for (const auto& s : f.slots)
        m.params[s.param].param.mutable_grad() = m.param_view(s, f.grad_full);
      f.grad_shard = at::Tensor();
    } else {
      if (!f.grad_shard.defined()) f.grad_shard = at::zeros({f.chunk}, f.options);
      f.grad_shard.zero_();
      f.staging = at::Tensor();
      f.arrived = 0;
      f.reduced = false;
    }
  }
}

void ZeroEngine::after_backward() {
  Impl& m = *impl_;
  if (m.config.stage < 2) return;
  // Flats some of whose parameters got no gradient this backward (unused in the forward) are
  // reduced now; the autograd graph is the same on every rank, so are the collective's order.
  for (size_t fi = 0; fi < m.flats.size(); ++fi)
    if (m.flats[fi].trainable && m.flats[fi].arrived > 0) m.reduce_staging(static_cast<int>(fi));
  // Every queued collective has finished before the trainer calls the communicator itself.
  if (m.comm_thread) m.comm_thread->drain();
  for (auto& f : m.flats)
    f.reduced = false;
  if (m.config.stage == 3)
    for (size_t g = 0; g < m.groups.size(); ++g)
      m.release(static_cast<int>(g));
}

double ZeroEngine::reduce_gradients() {
  Impl& m = *impl_;
  if (m.comm_thread) m.comm_thread->drain();
  at::NoGradGuard no_grad;
  if (m.config.stage == 0) {
    for (auto& f : m.flats)
      if (f.trainable) m.comm.all_reduce_sum(f.grad_full);
  } else if (m.config.stage == 1) {
    for (auto& f : m.flats) {
      if (!f.trainable) continue;
      f.grad_shard = at::empty({f.chunk}, f.grad_full.options());
      m.comm.reduce_scatter_sum(f.grad_full, f.grad_shard);
    }
  }
  // Squared norm of the owned gradient in float64; stage 0 owns everything, so needs no sum.
  at::Tensor sum_sq = at::zeros({1}, at::TensorOptions().dtype(at::kDouble).device(m.device()));
  for (auto& f : m.flats) {
    if (!f.trainable || f.own_len == 0) continue;
    const at::Tensor g = m.owned_grad(f).to(at::kDouble);
    sum_sq.add_(at::dot(g, g));
  }
  if (m.config.stage > 0) m.comm.all_reduce_sum(sum_sq);
  return std::sqrt(sum_sq.item<double>());
}

void ZeroEngine::scale_gradients(double factor) {
  Impl& m = *impl_;
  at::NoGradGuard no_grad;
  for (auto& f : m.flats)
    if (f.trainable && f.own_len > 0) m.owned_grad(f).mul_(factor);
}

void ZeroEngine::for_each_owned_gradient(const std::function<void(const GradientPart&)>& visit) {
  Impl& m = *impl_;
  const auto where = m.param_slots();  // to visit in constructor order
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < m.params.size(); ++i) {
    if (where[i].first < 0) continue;
    Flat& f = m.flats[where[i].first];
    if (!f.trainable || f.own_len == 0) continue;
    const Slot& s = f.slots[where[i].second];
    const auto [b, e] = overlap(s, f.own_begin, f.own_len);
    if (e <= b) continue;
    visit(GradientPart{m.params[i].name, s.shape, b - s.offset,
                       m.owned_grad(f).narrow(0, b - f.own_begin, e - b)});
  }
}

void ZeroEngine::step(double lr) {
  Impl& m = *impl_;
  at::NoGradGuard no_grad;
  m.step += 1;
  for (auto& f : m.flats) {
    if (!f.trainable) continue;
    if (m.config.stage == 1 || m.config.stage == 2) {
      // Update the owned chunk, then every rank's updated chunk goes to every rank.
      if (f.own_len > 0) m.update(f, lr);
      const at::Tensor mine = f.full.narrow(0, m.rank * f.chunk, f.chunk).clone();
      m.comm.all_gather(mine, f.full);
    } else if (f.own_len > 0) {
      m.update(f, lr);
    }
  }
}

void ZeroEngine::Impl::update(Flat& f, double lr) {
  at::Tensor low = weights_low(f);
  const at::Tensor grad = owned_grad(f);
  for (const auto& seg : f.segments) {
    const int64_t i = seg.begin - f.own_begin;  // position in the owned range
    at::Tensor w =
        f.master.defined() ? f.master.narrow(0, i, seg.length) : low.narrow(0, i, seg.length);
    at::Tensor m1 = f.exp_avg.narrow(0, i, seg.length);
    at::Tensor m2 = f.exp_avg_sq.narrow(0, i, seg.length);
    adamw_update_(w, grad.narrow(0, i, seg.length), m1, m2, step, lr,
                  seg.decay ? config.adam.weight_decay : 0.0, config.adam,
                  f.master.defined() ? low.narrow(0, i, seg.length) : at::Tensor(), &scratch);
  }
}

std::vector<TensorInfo> ZeroEngine::checkpoint_tensors(bool include_frozen) const {
  const Impl& m = *impl_;
  std::vector<TensorInfo> model, optimizer;
  for (const auto& f : m.flats) {
    if (!f.trainable && !include_frozen) continue;
    for (const auto& s : f.slots) {
      const std::string& name = m.params[s.param].name;
      model.push_back({name, f.dtype, s.shape, "model"});
      if (!f.trainable) continue;
      optimizer.push_back({name + ".exp_avg", f.exp_avg.scalar_type(), s.shape, "optimizer"});
      optimizer.push_back({name + ".exp_avg_sq", f.exp_avg_sq.scalar_type(), s.shape, "optimizer"});
      if (f.master.defined())
        optimizer.push_back({name + ".master", f.master.scalar_type(), s.shape, "optimizer"});
    }
  }
  optimizer.push_back({"step", at::kLong, {}, "optimizer"});
  model.insert(model.end(), optimizer.begin(), optimizer.end());
  return model;
}

std::vector<ShardPiece> ZeroEngine::checkpoint_pieces(bool include_frozen) const {
  const Impl& m = *impl_;
  std::vector<ShardPiece> pieces;
  // Each rank saves its chunk of every flat (at stage 0 too, where it holds everything).
  for (const auto& f : m.flats) {
    if (!f.trainable && !include_frozen) continue;
    const auto [chunk_begin, chunk_len] = f.chunk_range(m.rank);
    for (const auto& s : f.slots) {
      const auto [b, e] = overlap(s, chunk_begin, chunk_len);
      if (e <= b) continue;
      const std::string& name = m.params[s.param].name;
      const at::Tensor values = m.config.stage == 3 ? f.shard.narrow(0, b - m.rank * f.chunk, e - b)
                                                    : f.full.narrow(0, b, e - b);
      pieces.push_back({name, b - s.offset, values});
      if (!f.trainable) continue;
      const int64_t i = b - f.own_begin;  // the optimizer range contains the chunk
      pieces.push_back({name + ".exp_avg", b - s.offset, f.exp_avg.narrow(0, i, e - b)});
      pieces.push_back({name + ".exp_avg_sq", b - s.offset, f.exp_avg_sq.narrow(0, i, e - b)});
      if (f.master.defined())
        pieces.push_back({name + ".master", b - s.offset, f.master.narrow(0, i, e - b)});
    }
  }
  if (m.rank == 0)
    pieces.push_back({"step", 0, at::full({1}, m.step, at::TensorOptions().dtype(at::kLong))});
  return pieces;
}

void ZeroEngine::load_checkpoint(const ShardedCheckpointReader& reader, bool include_frozen) {
  Impl& m = *impl_;
  at::NoGradGuard no_grad;
  const auto check = [&](const std::string& name, const std::vector<int64_t>& shape) {
    const TensorInfo* info = reader.find(name);
    if (!info)
      throw Error(kZeroScope, reader.dir().string() + ": checkpoint has no tensor " + name);
    if (info->shape != shape)
      throw Error(kZeroScope, reader.dir().string() + ": " + name + " has shape " +
                                  shape_string(info->shape) + " in the checkpoint but " +
                                  shape_string(shape) + " in the model");
  };
  m.step = reader.read("step").item<int64_t>();
  for (auto& f : m.flats) {
    if (!f.trainable && !include_frozen) continue;
    for (const auto& s : f.slots) {
      const std::string& name = m.params[s.param].name;
      check(name, s.shape);
      if (m.config.stage == 3) {
        const auto [chunk_begin, chunk_len] = f.chunk_range(m.rank);
        const auto [b, e] = overlap(s, chunk_begin, chunk_len);
        if (e > b)
          f.shard.narrow(0, b - m.rank * f.chunk, e - b)
              .copy_(reader.read_range(name, b - s.offset, e - b));
      } else {
        f.full.narrow(0, s.offset, s.numel).copy_(reader.read_range(name, 0, s.numel));
      }
      if (!f.trainable) continue;
      const auto [b, e] = overlap(s, f.own_begin, f.own_len);
      if (e <= b) continue;
      for (const char* suffix : {".exp_avg", ".exp_avg_sq"}) {
        check(name + suffix, s.shape);
        at::Tensor& dst = std::string(suffix) == ".exp_avg" ? f.exp_avg : f.exp_avg_sq;
        dst.narrow(0, b - f.own_begin, e - b)
            .copy_(reader.read_range(name + suffix, b - s.offset, e - b));
      }
      if (f.master.defined()) {
        if (reader.find(name + ".master")) {
          check(name + ".master", s.shape);
          f.master.narrow(0, b - f.own_begin, e - b)
              .copy_(reader.read_range(name + ".master", b - s.offset, e - b));
        } else {  // saved by a float32 run: the weights are the master copy
          f.master.narrow(0, b - f.own_begin, e - b)
              .copy_(reader.read_range(name, b - s.offset, e - b));
        }
      }
    }
  }
}

ModelStateBytes ZeroEngine::state_bytes() const {
  const Impl& m = *impl_;
  ModelStateBytes bytes;
  const auto nbytes = [](const at::Tensor& t) {
    return t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : int64_t{0};
  };
  for (const auto& f : m.flats) {
    bytes.params += m.config.stage == 3 ? nbytes(f.shard) : nbytes(f.full);
    bytes.grads += nbytes(f.grad_full) + (m.config.stage >= 2 ? nbytes(f.grad_shard) : 0);
    bytes.optimizer += nbytes(f.master) + nbytes(f.exp_avg) + nbytes(f.exp_avg_sq);
  }
  return bytes;
}

void ZeroEngine::set_overlap(bool overlap) {
  Impl& m = *impl_;
  m.config.overlap = overlap;
  if (m.config.stage != 3) return;
  if (overlap && !m.comm_thread) m.comm_thread = std::make_unique<CommThread>();
  if (!overlap && m.comm_thread) {
    m.comm_thread->drain();
    m.comm_thread.reset();
  }
}

void ZeroEngine::fill_parameters(const std::function<void(const ParameterPart&)>& fill) {
  Impl& m = *impl_;
  if (m.config.stage != 3) throw Error(kZeroScope, "fill_parameters is for stage 3");
  const auto where = m.param_slots();
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < m.params.size(); ++i) {
    Flat& f = m.flats[where[i].first];
    const Slot& s = f.slots[where[i].second];
    const auto [chunk_begin, chunk_len] = f.chunk_range(m.rank);
    const auto [b, e] = overlap(s, chunk_begin, chunk_len);
    const bool owns = e > b;
    const at::Tensor dst =
        owns ? f.shard.narrow(0, b - m.rank * f.chunk, e - b) : f.shard.narrow(0, 0, 0);
    fill(ParameterPart{m.params[i].name, s.shape, owns ? b - s.offset : 0, dst});
    m.deferred[i] = false;
  }
  for (auto& f : m.flats)
    if (f.trainable) m.refresh_master(f);
}

void ZeroEngine::enter(int group, const at::Tensor& activation) {
  Impl& m = *impl_;
  if (m.config.stage != 3) return;
  m.gather(group);
  m.prefetch_after(group, +1);
  if (at::GradMode::is_enabled() && activation.requires_grad()) {
    // Backward has passed this group once the gradient reaches its input.
    Impl* impl = impl_.get();
    activation.register_hook([impl, group](const at::TensorBase&) {
      Group& g = impl->groups.at(group);
      if (impl->gradients_in(g)) {
        impl->release(group);
      } else {
        g.release_pending = true;
      }
    });
  }
}

void ZeroEngine::exit(int group, const at::Tensor& activation) {
  Impl& m = *impl_;
  if (m.config.stage != 3) return;
  m.release(group);
  if (at::GradMode::is_enabled() && activation.requires_grad()) {
    // Backward reaches this group when the gradient reaches its output.
    Impl* impl = impl_.get();
    activation.register_hook([impl, group](const at::TensorBase&) {
      impl->gather(group);
      impl->prefetch_after(group, -1);
    });
  }
}

}  // namespace tailor::dist
