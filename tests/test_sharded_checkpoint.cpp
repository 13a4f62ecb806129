// Sharded checkpoints (train/checkpoint/sharded_checkpoint.h), the streaming safetensors writer and
// the streaming export. References are independent of the code under test: the original tensors
// (sliced with plain torch ops), safetensors::save's bytes, and export_model's output for the
// same model held in memory.
#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "models/core/lora.h"
#include "models/gpt2/gpt2.h"
#include "models/io/hf_checkpoint.h"
#include "models/io/pretrained.h"
#include "models/io/safetensors.h"
#include "models/io/safetensors_stream.h"
#include "test_support.h"
#include "train/checkpoint/checkpoint.h"
#include "train/checkpoint/model_checkpoint.h"
#include "train/checkpoint/sharded_checkpoint.h"
#include "train/checkpoint/sharded_export.h"

namespace fs = std::filesystem;
using tailor::Error;
using tailor::TensorMap;
using tailor::TrainerState;
using tailor::dist::ShardedCheckpointReader;
using tailor::dist::ShardPiece;
using tailor::dist::TensorInfo;

namespace {

TrainerState sharded_state_at(int64_t step) {
  TrainerState s;
  s.step = step;
  s.epoch = 2;
  s.sample_position = 3 * step;
  s.recipe_hash = "h";
  s.extra = {{"note", "x"}};
  return s;
}

// Communicators for tests: only the host-side collectives the save uses are real.
class TestCommunicator : public tailor::dist::Communicator {
 public:
  std::string backend() const override { return "test"; }
  int local_rank() const override { return rank(); }
  int local_size() const override { return world_size(); }
  void all_reduce_sum(at::Tensor&) override { unused(); }
  void reduce_scatter_sum(const at::Tensor&, at::Tensor&) override { unused(); }
  void all_gather(const at::Tensor&, at::Tensor&) override { unused(); }
  void broadcast(at::Tensor&, int) override { unused(); }

 private:
  [[noreturn]] static void unused() { throw std::logic_error("tensor collective not expected"); }
};

class SingleCommunicator : public TestCommunicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  void barrier() override {}
  std::vector<std::string> all_gather_strings(const std::string& value) override { return {value}; }
};

// N ranks as N threads of one process, meeting in a shared exchange.
struct ThreadGroup {
  explicit ThreadGroup(int n) : size(n), slots(n) {}
  int size;
  std::mutex mutex;
  std::condition_variable cv;
  int arrived = 0;
  int64_t generation = 0;
  std::vector<std::string> slots;

  void arrive_and_wait() {
    std::unique_lock<std::mutex> lock(mutex);
    const int64_t gen = generation;
    if (++arrived == size) {
      arrived = 0;
      ++generation;
      cv.notify_all();
    } else {
      cv.wait(lock, [&] { return generation != gen; });
    }
  }
};

class ThreadCommunicator : public TestCommunicator {
 public:
  ThreadCommunicator(ThreadGroup& group, int rank) : group_(group), rank_(rank) {}
  int rank() const override { return rank_; }
  int world_size() const override { return group_.size; }
  void barrier() override { group_.arrive_and_wait(); }
  std::vector<std::string> all_gather_strings(const std::string& value) override {
    {
      std::lock_guard<std::mutex> lock(group_.mutex);
      group_.slots[rank_] = value;
    }
    group_.arrive_and_wait();
    std::vector<std::string> all;
    {
      std::lock_guard<std::mutex> lock(group_.mutex);
      all = group_.slots;
    }
    group_.arrive_and_wait();  // nobody overwrites a slot before everyone has read it
    return all;
  }

 private:
  ThreadGroup& group_;
  int rank_;
};

// Three tensors of different dtypes and shapes, values distinct per element.
struct Fixture {
  std::vector<TensorInfo> table;
  TensorMap originals;
};

Fixture three_tensors() {
  Fixture f;
  f.originals["a.weight"] = at::arange(35, at::kFloat).reshape({5, 7}) * 0.5 - 3;
  f.originals["b.bias"] = (at::arange(13, at::kFloat) / 7).to(at::kBFloat16);
  f.originals["a.weight.exp_avg"] = at::arange(24, at::kDouble).reshape({2, 3, 4}) * -1.25;
  f.table = {{"a.weight", at::kFloat, {5, 7}, "model"},
             {"b.bias", at::kBFloat16, {13}, "model"},
             {"a.weight.exp_avg", at::kDouble, {2, 3, 4}, "optimizer"}};
  return f;
}

ShardPiece piece(const TensorMap& originals, const std::string& name, int64_t offset,
                 int64_t length) {
  return {name, offset, originals.at(name).flatten().slice(0, offset, offset + length).clone()};
}

// Uneven hand-written split among 4 ranks (rank 2 holds nothing of b.bias; rank 3 holds two
// pieces of a.weight; a.weight.exp_avg is whole on rank 1).
std::vector<std::vector<ShardPiece>> split_four(const TensorMap& o) {
  return {
      {piece(o, "a.weight", 0, 3), piece(o, "b.bias", 0, 10)},
      {piece(o, "a.weight", 3, 17), piece(o, "a.weight.exp_avg", 0, 24)},
      {piece(o, "a.weight", 20, 1)},
      {piece(o, "a.weight", 21, 4), piece(o, "a.weight", 25, 10), piece(o, "b.bias", 10, 3)},
  };
}

// Plays every rank of a save in sequence with the building blocks.
fs::path save_virtual(const fs::path& run_dir, const std::vector<TensorInfo>& table,
                      const std::vector<std::vector<ShardPiece>>& ranks, const TrainerState& state,
                      int keep_last = 0) {
  namespace d = tailor::dist;
  const fs::path tmp = d::prepare_sharded_temp_dir(run_dir, state.step);
  std::vector<std::string> reports;
  const int world = static_cast<int>(ranks.size());
  for (int r = 0; r < world; ++r)
    reports.push_back(d::write_rank_shard(tmp, r, world, table, ranks[r], {{"seed", 100 + r}}));
  return d::commit_sharded_checkpoint(run_dir, tmp, table, reports, state, {keep_last});
}

void expect_matches_originals(const ShardedCheckpointReader& reader, const TensorMap& originals) {
  for (const auto& [name, original] : originals) {
    const at::Tensor whole = reader.read(name);
    EXPECT_EQ(whole.scalar_type(), original.scalar_type()) << name;
    EXPECT_TRUE(at::equal(whole, original)) << name;
  }
  // Random ranges against slices of the originals.
  std::mt19937 gen(7);
  for (int i = 0; i < 40; ++i) {
    auto it = originals.begin();
    std::advance(it, gen() % originals.size());
    const int64_t n = it->second.numel();
    const int64_t begin = gen() % (n + 1);
    const int64_t length = gen() % (n - begin + 1);
    const at::Tensor got = reader.read_range(it->first, begin, length);
    const at::Tensor want = it->second.flatten().slice(0, begin, begin + length);
    EXPECT_TRUE(at::equal(got, want)) << it->first << " [" << begin << ", +" << length << ")";
  }
}

// ---- Streaming safetensors writer ---------------------------------------------------------------

TEST(SafetensorsStream, ByteIdenticalToSaveWhateverTheWriteOrder) {
  const fs::path dir = tailor::test::fresh_dir("sharded_stream_bytes");
  TensorMap tensors = {
      {"z.last", at::arange(6, at::kFloat).reshape({2, 3})},
      {"a.first", at::arange(5, at::kFloat).to(at::kBFloat16)},
      {"m.step", at::scalar_tensor(42, at::kLong)},
      {"e.empty", at::empty({0, 4}, at::kDouble)},
      {"b.bytes", at::arange(3, at::kByte)},
      {"k.odd_name_length_x", at::ones({1}, at::kInt)},
  };
  for (const auto& metadata : std::vector<std::map<std::string, std::string>>{
           {{"format", "pt"}}, {}, {{"format", "pt"}, {"origin", "test"}}}) {
    tailor::safetensors::save(dir / "saved.safetensors", tensors, metadata);
    std::vector<tailor::safetensors::HeaderEntry> entries;
    for (const auto& [name, t] : tensors)
      entries.push_back({name, t.scalar_type(), t.sizes().vec()});
    std::reverse(entries.begin(), entries.end());  // declaration order does not matter
    fs::remove(dir / "streamed.safetensors");
    tailor::safetensors::StreamWriter writer(dir / "streamed.safetensors", entries, metadata);
    EXPECT_EQ(writer.order(),
              (std::vector<std::string>{"a.first", "b.bytes", "e.empty", "k.odd_name_length_x",
                                        "m.step", "z.last"}));
    EXPECT_FALSE(fs::exists(dir / "streamed.safetensors"));  // only the temporary so far
    for (const std::string name :
         {"m.step", "z.last", "a.first", "e.empty", "b.bytes", "k.odd_name_length_x"})
      writer.write(name, tensors.at(name));
    writer.finish();
    EXPECT_EQ(tailor::read_file(dir / "streamed.safetensors"),
              tailor::read_file(dir / "saved.safetensors"));
  }
}

TEST(SafetensorsStream, RejectsMismatchesAndLeavesNoFileUnlessFinished) {
  const fs::path dir = tailor::test::fresh_dir("sharded_stream_errors");
  const fs::path file = dir / "x.safetensors";
  {
    tailor::safetensors::StreamWriter writer(file,
                                             {{"w", at::kFloat, {2, 2}}, {"b", at::kFloat, {2}}});
    EXPECT_NE(tailor::test::error_of<std::exception>([&] {
                writer.write("w", at::zeros({4}));
              }).find("shape [4], declared [2, 2]"),
              std::string::npos);
    EXPECT_NE(tailor::test::error_of<std::exception>([&] {
                writer.write("w", at::zeros({2, 2}, at::kDouble));
              }).find("dtype"),
              std::string::npos);
    EXPECT_NE(tailor::test::error_of<std::exception>([&] {
                writer.write("q", at::zeros({2}));
              }).find("\"q\" was not declared"),
              std::string::npos);
    writer.write("w", at::zeros({2, 2}));
    EXPECT_NE(tailor::test::error_of<std::exception>([&] {
                writer.write("w", at::zeros({2, 2}));
              }).find("twice"),
              std::string::npos);
    EXPECT_NE(tailor::test::error_of<std::exception>([&] {
                writer.finish();
              }).find("\"b\" was declared but never written"),
              std::string::npos);
  }
  EXPECT_FALSE(fs::exists(file));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 0);
  EXPECT_NE(
      tailor::test::error_of<std::exception>([&] {
        tailor::safetensors::StreamWriter w(file, {{"w", at::kFloat, {1}}, {"w", at::kFloat, {1}}});
      }).find("given twice"),
      std::string::npos);
}

// ---- Saving and reading -------------------------------------------------------------------------

TEST(ShardedCheckpoint, TensorInfoNumelOfScalarIsOne) {
  EXPECT_EQ((TensorInfo{"s", at::kLong, {}, "optimizer"}.numel()), 1);
  EXPECT_EQ((TensorInfo{"t", at::kFloat, {3, 0}, "model"}.numel()), 0);
}

TEST(ShardedCheckpoint, FourVirtualRanksReadBackWholeAndAnyRange) {
  const fs::path run = tailor::test::fresh_dir("sharded_four_ranks");
  const Fixture f = three_tensors();
  const fs::path dir = save_virtual(run, f.table, split_four(f.originals), sharded_state_at(50));
  EXPECT_EQ(dir, run / "checkpoints" / "step_00000050");
  EXPECT_EQ(tailor::latest_checkpoint(run), dir);
  EXPECT_TRUE(tailor::dist::is_sharded_checkpoint(dir));
  for (int r = 0; r < 4; ++r)
    EXPECT_TRUE(fs::is_regular_file(dir / tailor::dist::shard_file_name(r, 4)));
  EXPECT_EQ(tailor::dist::shard_file_name(1, 4), "shard_00001-of-00004.safetensors");
  EXPECT_FALSE(fs::exists(tailor::dist::sharded_temp_dir(run, 50)));

  // The manifest as documented, and pieces named "<tensor>@<offset>" in the shard files.
  const auto manifest = nlohmann::json::parse(tailor::read_file(dir / "manifest.json"));
  EXPECT_EQ(manifest["format"], "tailor-sharded-v1");
  EXPECT_EQ(manifest["world_size"], 4);
  EXPECT_EQ(manifest["step"], 50);
  EXPECT_EQ(manifest["tensors"]["b.bias"]["dtype"], "BF16");
  EXPECT_EQ(manifest["tensors"]["a.weight.exp_avg"]["kind"], "optimizer");
  EXPECT_EQ(manifest["tensors"]["a.weight"]["shape"], nlohmann::json::array({5, 7}));
  tailor::safetensors::Reader shard3(dir / "shard_00003-of-00004.safetensors");
  EXPECT_EQ(shard3.names(), (std::vector<std::string>{"a.weight@21", "a.weight@25", "b.bias@10"}));

  ShardedCheckpointReader reader(dir);
  EXPECT_TRUE(reader.sharded());
  EXPECT_EQ(reader.world_size(), 4);
  EXPECT_EQ(reader.state().step, 50);
  EXPECT_EQ(reader.state().sample_position, 150);
  EXPECT_EQ(reader.state().extra["note"], "x");
  EXPECT_EQ(reader.state().rng["ranks"].size(), 4u);
  EXPECT_EQ(reader.state().rng["ranks"][2]["seed"], 102);
  ASSERT_EQ(reader.tensors().size(), 3u);
  EXPECT_EQ(reader.tensors()[0].name, "a.weight");  // manifest order = the caller's order
  EXPECT_EQ(reader.tensors()[2].name, "a.weight.exp_avg");
  EXPECT_EQ(reader.find("b.bias")->dtype, at::kBFloat16);
  EXPECT_EQ(reader.find("nope"), nullptr);
  expect_matches_originals(reader, f.originals);
  // A range spanning three pieces of two ranks, by hand: a.weight elements 19..26.
  const at::Tensor mid = reader.read_range("a.weight", 19, 8);
  std::vector<float> want;
  for (int i = 19; i < 27; ++i)
    want.push_back(i * 0.5f - 3);
  EXPECT_TRUE(at::equal(mid, at::tensor(want)));
  EXPECT_NE(tailor::test::error_of<std::exception>([&] {
              reader.read_range("a.weight", 30, 6);
            }).find("[30, 36) requested"),
            std::string::npos);
  EXPECT_NE(tailor::test::error_of<std::exception>([&] {
              reader.read("nope");
            }).find("no tensor named \"nope\""),
            std::string::npos);
}

TEST(ShardedCheckpoint, RepartitionsFourToTwoToOne) {
  const fs::path run = tailor::test::fresh_dir("sharded_repartition");
  const Fixture f = three_tensors();
  const fs::path four = save_virtual(run, f.table, split_four(f.originals), sharded_state_at(10));

  // Two ranks re-partition from what they read (as a resumed run would), other boundaries.
  ShardedCheckpointReader from_four(four);
  std::vector<std::vector<ShardPiece>> two(2);
  for (const auto& info : from_four.tensors()) {
    const int64_t half = info.numel() / 2 + 1;
    two[0].push_back({info.name, 0, from_four.read_range(info.name, 0, half)});
    two[1].push_back({info.name, half, from_four.read_range(info.name, half, info.numel() - half)});
  }
  const fs::path two_dir = save_virtual(run, from_four.tensors(), two, sharded_state_at(11));
  ShardedCheckpointReader from_two(two_dir);
  EXPECT_EQ(from_two.world_size(), 2);
  expect_matches_originals(from_two, f.originals);

  // One rank, through the collective entry point.
  SingleCommunicator comm;
  std::vector<ShardPiece> one;
  for (const auto& info : from_two.tensors())
    one.push_back({info.name, 0, from_two.read(info.name).flatten()});
  const fs::path one_dir = tailor::dist::save_sharded_checkpoint(comm, run, from_two.tensors(), one,
                                                                 sharded_state_at(12));
  ShardedCheckpointReader from_one(one_dir);
  EXPECT_EQ(from_one.world_size(), 1);
  EXPECT_EQ(from_one.state().rng["ranks"].size(), 1u);
  expect_matches_originals(from_one, f.originals);
  EXPECT_EQ(tailor::list_checkpoints(run).size(), 3u);
  EXPECT_EQ(tailor::latest_checkpoint(run), one_dir);
}

TEST(ShardedCheckpoint, CommitRefusesGapsAndOverlapsAndCommitsNothing) {
  const fs::path run = tailor::test::fresh_dir("sharded_coverage");
  const Fixture f = three_tensors();
  const fs::path good = save_virtual(run, f.table, split_four(f.originals), sharded_state_at(1));

  auto gap = split_four(f.originals);
  gap[2].clear();  // a.weight element 20 now belongs to no rank
  std::string message = tailor::test::error_of<std::exception>(
      [&] { save_virtual(run, f.table, gap, sharded_state_at(2)); });
  EXPECT_NE(message.find("tensor \"a.weight\" [5, 7]: elements [20, 21) are held by no rank"),
            std::string::npos)
      << message;

  auto tail = split_four(f.originals);
  tail[3].pop_back();  // b.bias [10, 13) missing at the end
  message = tailor::test::error_of<std::exception>(
      [&] { save_virtual(run, f.table, tail, sharded_state_at(2)); });
  EXPECT_NE(message.find("tensor \"b.bias\" [13]: elements [10, 13) are held by no rank"),
            std::string::npos)
      << message;

  auto overlap = split_four(f.originals);
  overlap[2].push_back(piece(f.originals, "b.bias", 8, 3));  // ranks 0 and 2 both hold 8, 9
  message = tailor::test::error_of<std::exception>(
      [&] { save_virtual(run, f.table, overlap, sharded_state_at(2)); });
  EXPECT_NE(message.find("tensor \"b.bias\" [13]: elements [8, 10) are held twice (by rank 0 and "
                         "rank 2)"),
            std::string::npos)
      << message;

  EXPECT_FALSE(fs::exists(run / "checkpoints" / "step_00000002"));
  EXPECT_EQ(tailor::latest_checkpoint(run), good);

  // A rank's own bad piece is refused before anything is written.
  message = tailor::test::error_of<std::exception>([&] {
    tailor::dist::write_rank_shard(run, 0, 1, f.table, {{"a.weight", 30, at::zeros({6})}}, {});
  });
  EXPECT_NE(message.find("elements [30, 36) fall outside the tensor's 35"), std::string::npos)
      << message;
  message = tailor::test::error_of<std::exception>([&] {
    tailor::dist::write_rank_shard(run, 0, 1, f.table,
                                   {{"a.weight", 0, at::zeros({6}, at::kDouble)}}, {});
  });
  EXPECT_NE(message.find("differs from the table's Float"), std::string::npos) << message;
}

TEST(ShardedCheckpoint, KilledBeforeCommitLeavesPreviousCheckpointLatest) {
  const fs::path run = tailor::test::fresh_dir("sharded_killed");
  const Fixture f = three_tensors();
  const fs::path previous =
      save_virtual(run, f.table, split_four(f.originals), sharded_state_at(100));

  // Step 200: every rank wrote its shard, then the job died before rank 0's commit.
  Fixture changed = f;
  for (auto& [name, t] : changed.originals)
    t = t + 1;
  const fs::path tmp = tailor::dist::prepare_sharded_temp_dir(run, 200);
  const auto ranks = split_four(changed.originals);
  for (int r = 0; r < 4; ++r)
    tailor::dist::write_rank_shard(tmp, r, 4, f.table, ranks[r], {});

  EXPECT_EQ(tailor::latest_checkpoint(run), previous);
  EXPECT_EQ(tailor::list_checkpoints(run), std::vector<fs::path>{previous});
  EXPECT_EQ(tailor::resolve_checkpoint_dir(run), previous);
  expect_matches_originals(ShardedCheckpointReader(*tailor::latest_checkpoint(run)), f.originals);

  // The next save clears the dead one's temporary directory.
  save_virtual(run, f.table, split_four(f.originals), sharded_state_at(300), /*keep_last=*/1);
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_EQ(tailor::list_checkpoints(run),
            std::vector<fs::path>{run / "checkpoints" / "step_00000300"});
}

TEST(ShardedCheckpoint, CollectiveSaveOnFourThreadsAndFailureReachesEveryRank) {
  const fs::path run = tailor::test::fresh_dir("sharded_threads");
  const Fixture f = three_tensors();
  auto run_ranks = [&](const std::vector<std::vector<ShardPiece>>& ranks, int64_t step) {
    ThreadGroup group(4);
    std::vector<std::string> errors(4);
    std::vector<fs::path> dirs(4);
    std::vector<std::thread> threads;
    for (int r = 0; r < 4; ++r) {
      threads.emplace_back([&, r] {
        ThreadCommunicator comm(group, r);
        TrainerState state = sharded_state_at(step);
        state.rng = {{"rank", r}};
        try {
          dirs[r] = tailor::dist::save_sharded_checkpoint(comm, run, f.table, ranks[r], state);
        } catch (const std::exception& e) {
          errors[r] = e.what();
        }
      });
    }
    for (auto& t : threads)
      t.join();
    return std::make_pair(dirs, errors);
  };

  std::vector<fs::path> dirs;
  std::vector<std::string> errors;
  std::tie(dirs, errors) = run_ranks(split_four(f.originals), 5);
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(errors[r], "") << r;
    EXPECT_EQ(dirs[r], run / "checkpoints" / "step_00000005");
  }
  ShardedCheckpointReader reader(dirs[0]);
  EXPECT_EQ(reader.state().rng["ranks"][3]["rank"], 3);  // each rank's own state, in rank order
  expect_matches_originals(reader, f.originals);

  // Rank 3 passes a piece of a tensor the table lacks: every rank throws, nothing is committed.
  auto bad = split_four(f.originals);
  bad[3].push_back({"ghost", 0, at::zeros({1})});
  std::tie(dirs, errors) = run_ranks(bad, 6);
  for (int r = 0; r < 4; ++r)
    EXPECT_NE(errors[r].find("rank 3 failed to write its shard"), std::string::npos)
        << r << ": " << errors[r];
  EXPECT_NE(errors[1].find("failed on rank 0"), std::string::npos) << errors[1];
  EXPECT_FALSE(fs::exists(run / "checkpoints" / "step_00000006"));
  EXPECT_FALSE(fs::exists(tailor::dist::sharded_temp_dir(run, 6)));
  EXPECT_EQ(tailor::latest_checkpoint(run), run / "checkpoints" / "step_00000005");
}

TEST(ShardedCheckpoint, ReaderOpensSingleProcessLayout) {
  const fs::path run = tailor::test::fresh_dir("sharded_classic");
  TensorMap model = {{"w", at::arange(12, at::kFloat).reshape({3, 4})},
                     {"b", at::arange(3, at::kFloat).to(at::kBFloat16)}};
  TensorMap optimizer = {{"w.exp_avg", at::full({3, 4}, 0.25)},
                         {"step", at::scalar_tensor(7, at::kLong)}};
  const fs::path dir = tailor::save_checkpoint(run, model, optimizer, sharded_state_at(7));
  EXPECT_FALSE(tailor::dist::is_sharded_checkpoint(dir));

  ShardedCheckpointReader reader(dir);
  EXPECT_FALSE(reader.sharded());
  EXPECT_EQ(reader.world_size(), 1);
  EXPECT_EQ(reader.state().step, 7);
  EXPECT_EQ(reader.tensors().size(), 4u);
  EXPECT_EQ(reader.find("w")->kind, "model");
  EXPECT_EQ(reader.find("step")->kind, "optimizer");
  EXPECT_EQ(reader.find("step")->shape, std::vector<int64_t>{});
  EXPECT_EQ(reader.find("step")->dtype, at::kLong);
  const at::Tensor step = reader.read("step");
  EXPECT_EQ(step.dim(), 0);
  EXPECT_EQ(step.item<int64_t>(), 7);
  TensorMap all = model;
  all.insert(optimizer.begin(), optimizer.end());
  expect_matches_originals(reader, all);
  EXPECT_TRUE(at::equal(reader.read_range("w", 5, 4), at::tensor({5.f, 6.f, 7.f, 8.f})));
}

TEST(ShardedCheckpoint, ReaderErrorsNameFileAndTensor) {
  const Fixture f = three_tensors();
  auto make = [&](const std::string& name) {
    const fs::path run = tailor::test::fresh_dir("sharded_" + name);
    return save_virtual(run, f.table, split_four(f.originals), sharded_state_at(4));
  };

  {  // A missing shard file: tensors elsewhere still read; the one it holds names the file.
    const fs::path dir = make("missing_shard");
    fs::remove(dir / "shard_00002-of-00004.safetensors");
    ShardedCheckpointReader reader(dir);
    EXPECT_TRUE(at::equal(reader.read("b.bias"), f.originals.at("b.bias")));
    const std::string message =
        tailor::test::error_of<std::exception>([&] { reader.read("a.weight"); });
    EXPECT_NE(message.find("shard_00002-of-00004.safetensors (holding part of tensor "
                           "\"a.weight\") is missing"),
              std::string::npos)
        << message;
  }
  {  // The shard's dtype differs from the manifest's.
    const fs::path dir = make("dtype");
    auto manifest = nlohmann::ordered_json::parse(tailor::read_file(dir / "manifest.json"));
    manifest["tensors"]["a.weight"]["dtype"] = "I32";
    tailor::write_file_atomic(dir / "manifest.json", manifest.dump());
    const std::string message = tailor::test::error_of<std::exception>(
        [&] { ShardedCheckpointReader(dir).read("a.weight"); });
    EXPECT_NE(message.find("shard_00000-of-00004.safetensors: tensor \"a.weight\" piece "
                           "\"a.weight@0\": dtype F32, the manifest says I32"),
              std::string::npos)
        << message;
  }
  {  // A piece dropped from the manifest: a gap, reported on read.
    const fs::path dir = make("gap");
    auto manifest = nlohmann::ordered_json::parse(tailor::read_file(dir / "manifest.json"));
    manifest["shards"][2]["pieces"] = nlohmann::ordered_json::array();
    tailor::write_file_atomic(dir / "manifest.json", manifest.dump());
    ShardedCheckpointReader reader(dir);
    EXPECT_TRUE(at::equal(reader.read_range("a.weight", 0, 20),
                          f.originals.at("a.weight").flatten().slice(0, 0, 20)));
    const std::string message =
        tailor::test::error_of<std::exception>([&] { reader.read("a.weight"); });
    EXPECT_NE(message.find("manifest.json: tensor \"a.weight\": elements [20, 21) are held by no "
                           "shard"),
              std::string::npos)
        << message;
  }
  {  // Overlapping pieces in the manifest are refused at open.
    const fs::path dir = make("overlap");
    auto manifest = nlohmann::ordered_json::parse(tailor::read_file(dir / "manifest.json"));
    manifest["shards"][2]["pieces"][0]["offset"] = 19;
    tailor::write_file_atomic(dir / "manifest.json", manifest.dump());
    const std::string message =
        tailor::test::error_of<std::exception>([&] { ShardedCheckpointReader reader(dir); });
    EXPECT_NE(
        message.find("tensor \"a.weight\": elements [19, 20) are held twice "
                     "(shard_00001-of-00004.safetensors and shard_00002-of-00004.safetensors)"),
        std::string::npos)
        << message;
  }
  {  // A corrupt manifest names its path.
    const fs::path dir = make("corrupt");
    tailor::write_file_atomic(dir / "manifest.json", "{\"format\": \"tailor-sharded-v1\", ");
    const std::string message =
        tailor::test::error_of<std::exception>([&] { ShardedCheckpointReader reader(dir); });
    EXPECT_NE(message.find((dir / "manifest.json").string() + ": not valid JSON"),
              std::string::npos)
        << message;
    tailor::write_file_atomic(dir / "manifest.json", "{\"format\": \"tailor-sharded-v1\"}");
    EXPECT_NE(tailor::test::error_of<std::exception>([&] {
                ShardedCheckpointReader reader(dir);
              }).find((dir / "manifest.json").string() + ": malformed manifest"),
              std::string::npos);
  }
}

// ---- Streaming export ---------------------------------------------------------------------------

const fs::path kExportTokenizer = fs::path(TAILOR_SOURCE_DIR) / "assets" / "tokenizers" / "gpt2";

tailor::GPT2Config export_gpt2_config() {
  tailor::GPT2Config c;
  c.vocab_size = 50;
  c.n_positions = 16;
  c.n_embd = 8;
  c.n_layer = 2;
  c.n_head = 2;
  return c;
}

tailor::LoraConfig small_lora() {
  tailor::LoraConfig l;
  l.rank = 3;
  l.alpha = 6;
  l.targets = {"c_attn", "mlp.c_proj"};
  return l;
}

// A model with LoRA factors that are not at their init (B would be zero).
tailor::GPT2LMHead export_test_model(const tailor::GPT2Config& config,
                                     const std::optional<tailor::LoraConfig>& lora,
                                     at::ScalarType dtype) {
  torch::manual_seed(3);
  tailor::GPT2LMHead model(config);
  model->to(dtype);
  if (lora) {
    tailor::apply_lora(*model, *lora);
    torch::NoGradGuard no_grad;
    for (auto& item : tailor::lora_parameters(*model))
      item.value().copy_(torch::randn(item.value().sizes()) * 0.3);
  }
  return model;
}

// Saves `tensors` as a sharded checkpoint of 3 virtual ranks: each tensor's flattening is cut
// into 3 contiguous ranges (ZeRO-style), the last rank taking the remainder.
fs::path save_model_sharded(const fs::path& run, const TensorMap& tensors,
                            const tailor::ModelProvenance& p) {
  std::vector<TensorInfo> table;
  std::vector<std::vector<ShardPiece>> ranks(3);
  for (const auto& [name, t] : tensors) {
    table.push_back({name, t.scalar_type(), t.sizes().vec(), "model"});
    const at::Tensor flat = t.detach().flatten();
    const int64_t n = flat.numel(), part = n / 3;
    for (int r = 0; r < 3; ++r) {
      const int64_t begin = r * part, end = r == 2 ? n : (r + 1) * part;
      ranks[r].push_back({name, begin, flat.slice(0, begin, end).clone()});
    }
  }
  table.push_back({"step", at::kLong, {}, "optimizer"});
  ranks[1].push_back({"step", 0, at::full({1}, 9, at::kLong)});
  TrainerState state = sharded_state_at(9);
  state.extra["model"] = tailor::provenance_to_json(p);
  return save_virtual(run, table, ranks, state);
}

// Every file under `a` and `b` (relative paths) with identical bytes.
void expect_same_tree(const fs::path& a, const fs::path& b) {
  std::map<std::string, std::string> files_a, files_b;
  for (const auto& [root, files] : {std::pair{a, &files_a}, std::pair{b, &files_b}}) {
    for (const auto& entry : fs::recursive_directory_iterator(root))
      if (entry.is_regular_file())
        (*files)[fs::relative(entry.path(), root).string()] = tailor::read_file(entry.path());
  }
  std::vector<std::string> names_a, names_b;
  for (const auto& [n, c] : files_a)
    names_a.push_back(n);
  for (const auto& [n, c] : files_b)
    names_b.push_back(n);
  ASSERT_EQ(names_a, names_b);
  for (const auto& [name, contents] : files_a)
    EXPECT_TRUE(contents == files_b.at(name)) << name << " differs";
}

struct ExportCase {
  std::string name;
  bool lora;
  bool merged;
  at::ScalarType dtype;
  bool base_from_hf;  // checkpoint holds only the LoRA factors; base in an HF directory
};

class ShardedExport : public ::testing::TestWithParam<ExportCase> {};

TEST_P(ShardedExport, EqualsExportOfTheModelInMemory) {
  const ExportCase c = GetParam();
  const fs::path root = tailor::test::fresh_dir("sharded_export_" + c.name);
  const auto lora = c.lora ? std::optional<tailor::LoraConfig>(small_lora()) : std::nullopt;
  tailor::GPT2LMHead model = export_test_model(export_gpt2_config(), lora, c.dtype);

  tailor::ModelProvenance p;
  p.config = export_gpt2_config().to_json();
  p.lora = lora;
  p.tokenizer = kExportTokenizer;
  p.dtype = c.dtype == at::kBFloat16 ? "bfloat16" : "float32";
  TensorMap stored;
  for (const auto& item : model->named_parameters())
    if (!c.base_from_hf || item.value().requires_grad()) stored[item.key()] = item.value();
  if (c.base_from_hf) {
    // The frozen base as a float32 HF directory, as a pretrained model would come.
    tailor::GPT2LMHead base = export_test_model(export_gpt2_config(), std::nullopt, at::kFloat);
    {
      torch::NoGradGuard no_grad;
      for (auto& item : model->named_parameters())
        if (!item.value().requires_grad()) item.value().copy_(base->named_parameters()[item.key()]);
    }
    tailor::save_pretrained(root / "base", *base);
    p.base_model = root / "base";
  }
  const fs::path ckpt = save_model_sharded(root / "run", stored, p);

  // export_model merges and unmerges in place, which need not restore the weights bit for bit.
  TensorMap trained;
  for (const auto& item : model->named_parameters())
    trained[item.key()] = item.value().detach().clone();
  tailor::export_model(*model, p, root / "reference", c.merged);
  tailor::ModelProvenance got;
  tailor::export_checkpoint_streaming(ckpt, root / "streamed", c.merged, &got);
  expect_same_tree(root / "reference", root / "streamed");
  EXPECT_EQ(got.dtype, p.dtype);
  EXPECT_EQ(fs::exists(root / "streamed" / "adapter"), c.lora && !c.merged);

  // model_from_checkpoint assembles the same model from the shards.
  tailor::CausalLM rebuilt = tailor::model_from_checkpoint(ckpt);
  for (const auto& item : rebuilt->named_parameters())
    EXPECT_TRUE(at::equal(item.value(), trained.at(item.key()))) << item.key();
  EXPECT_EQ(rebuilt->named_parameters().size(), trained.size());
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ShardedExport,
    ::testing::Values(ExportCase{"full", false, false, at::kFloat, false},
                      ExportCase{"lora_adapter", true, false, at::kFloat, false},
                      ExportCase{"lora_merged", true, true, at::kFloat, false},
                      ExportCase{"lora_merged_bf16", true, true, at::kBFloat16, false},
                      ExportCase{"lora_on_hf_base", true, false, at::kFloat, true},
                      ExportCase{"lora_on_hf_base_merged", true, true, at::kBFloat16, true}),
    [](const auto& info) { return info.param.name; });

TEST(ShardedExportLayout, ShardsAndIndexAsSaveStateDict) {
  const fs::path root = tailor::test::fresh_dir("sharded_export_sharded_files");
  tailor::GPT2LMHead model = export_test_model(export_gpt2_config(), std::nullopt, at::kFloat);
  tailor::ModelProvenance p;
  p.config = export_gpt2_config().to_json();
  p.tokenizer = kExportTokenizer;
  p.dtype = "float32";
  TensorMap stored;
  for (const auto& item : model->named_parameters())
    stored[item.key()] = item.value();
  const fs::path ckpt = save_model_sharded(root / "run", stored, p);

  const uint64_t cap = 1200;  // bytes: several files for this model
  tailor::export_checkpoint_streaming(ckpt, root / "streamed", false, nullptr, cap);
  tailor::hf::save_state_dict(root / "reference", model->hf_state_dict(), cap);
  EXPECT_TRUE(fs::exists(root / "streamed" / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(root / "streamed" / "model.safetensors"));
  for (const auto& entry : fs::directory_iterator(root / "reference"))
    EXPECT_EQ(tailor::read_file(entry.path()),
              tailor::read_file(root / "streamed" / entry.path().filename()))
        << entry.path().filename();
}

TEST(ShardedExportLayout, CliExportsShardedCheckpointOfRunDirectory) {
  const fs::path root = tailor::test::fresh_dir("sharded_export_cli");
  tailor::GPT2LMHead model = export_test_model(export_gpt2_config(), small_lora(), at::kFloat);
  tailor::ModelProvenance p;
  p.config = export_gpt2_config().to_json();
  p.lora = small_lora();
  p.tokenizer = kExportTokenizer;
  p.dtype = "float32";
  TensorMap stored;
  for (const auto& item : model->named_parameters())
    stored[item.key()] = item.value();
  save_model_sharded(root / "run", stored, p);
  ASSERT_EQ(tailor::cli::export_command({"export", "--checkpoint", (root / "run").string(), "--out",
                                         (root / "out").string(), "--merge-lora"}),
            0);
  tailor::export_model(*model, p, root / "reference", /*merged=*/true);
  expect_same_tree(root / "reference", root / "out");
}

TEST(ShardedExportLayout, RefusesCheckpointThatDoesNotMatchItsProvenance) {
  const fs::path root = tailor::test::fresh_dir("sharded_export_mismatch");
  tailor::GPT2LMHead model = export_test_model(export_gpt2_config(), std::nullopt, at::kFloat);
  tailor::ModelProvenance p;
  p.config = export_gpt2_config().to_json();
  p.config["n_embd"] = 16;  // the recorded config disagrees with the stored weights
  p.tokenizer = kExportTokenizer;
  p.dtype = "float32";
  TensorMap stored;
  for (const auto& item : model->named_parameters())
    stored[item.key()] = item.value();
  const fs::path ckpt = save_model_sharded(root / "run", stored, p);
  const std::string message = tailor::test::error_of<std::exception>(
      [&] { tailor::export_checkpoint_streaming(ckpt, root / "out", false); });
  EXPECT_NE(message.find("transformer.h.0.attn.c_attn.bias has shape [24], the model expects [48]"),
            std::string::npos)
      << message;
  EXPECT_FALSE(fs::exists(root / "out"));

  stored.erase("transformer.ln_f.bias");
  p.config["n_embd"] = 8;
  const fs::path missing = save_model_sharded(root / "run2", stored, p);
  EXPECT_NE(tailor::test::error_of<std::exception>([&] {
              tailor::export_checkpoint_streaming(missing, root / "out", false);
            }).find("missing tensor transformer.ln_f.bias"),
            std::string::npos);
}

}  // namespace
