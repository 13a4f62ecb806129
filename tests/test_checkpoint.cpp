// Checkpoint directories, RNG state capture and a toy-model resume that must be bit-identical to
// an uninterrupted run.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "test_support.h"
#include "train/checkpoint/checkpoint.h"
#include "train/checkpoint/rng_state.h"
#include "train/optim/adamw.h"
#include "train/optim/grad_clip.h"
#include "train/optim/lr_schedule.h"

namespace fs = std::filesystem;

namespace {

at::Tensor bytes_of(const std::string& s) {
  at::Tensor t = at::empty({static_cast<int64_t>(s.size())}, at::kByte);
  std::copy(s.begin(), s.end(), t.data_ptr<uint8_t>());
  return t;
}

std::string string_of(const at::Tensor& t) {
  return std::string(reinterpret_cast<const char*>(t.data_ptr<uint8_t>()), t.numel());
}

tailor::TrainerState trainer_state_at(int64_t step) {
  tailor::TrainerState s;
  s.step = step;
  s.epoch = 1;
  s.sample_position = 8 * step;
  s.recipe_hash = "abc123";
  return s;
}

tailor::TensorMap toy_weights(double value) {
  return {{"w", at::full({2, 3}, value)}};
}

int count_entries(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir))
    n += 1, (void)e;
  return n;
}

}  // namespace

// ---- RNG state ----

TEST(RngState, Base64MatchesRfc4648Vectors) {
  const std::vector<std::pair<std::string, std::string>> vectors{{"", ""},
                                                                 {"f", "Zg=="},
                                                                 {"fo", "Zm8="},
                                                                 {"foo", "Zm9v"},
                                                                 {"foob", "Zm9vYg=="},
                                                                 {"fooba", "Zm9vYmE="},
                                                                 {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(tailor::encode_base64(bytes_of(plain)), encoded);
    EXPECT_EQ(string_of(tailor::decode_base64(encoded)), plain);
  }
  EXPECT_THROW(tailor::decode_base64("Zm9"), tailor::Error);
  EXPECT_THROW(tailor::decode_base64("Zm=v"), tailor::Error);
  EXPECT_THROW(tailor::decode_base64("Z==="), tailor::Error);
  EXPECT_THROW(tailor::decode_base64("Zg==Zg=="), tailor::Error);
}

TEST(RngState, TorchCpuGeneratorRestoresSequence) {
  torch::manual_seed(7);
  (void)torch::randn({3});
  const nlohmann::json saved = tailor::capture_torch_rng_states();
  const at::Tensor first = torch::randn({5});
  const at::Tensor drop = torch::dropout(torch::ones({64}), 0.5, /*train=*/true);
  // Survives a JSON round trip (as in trainer_state.json).
  tailor::restore_torch_rng_states(nlohmann::json::parse(saved.dump()));
  EXPECT_TRUE(torch::equal(torch::randn({5}), first));
  EXPECT_TRUE(torch::equal(torch::dropout(torch::ones({64}), 0.5, true), drop));
  EXPECT_FALSE(torch::equal(torch::randn({5}), first));
  EXPECT_THROW(tailor::restore_torch_rng_states(nlohmann::json::object()), tailor::Error);
}

TEST(RngState, Mt19937RoundTripsThroughText) {
  std::mt19937_64 engine(42);
  engine.discard(1000);
  const std::string text = tailor::mt19937_to_string(engine);
  std::vector<uint64_t> expected;
  for (int i = 0; i < 10; ++i)
    expected.push_back(engine());
  std::mt19937_64 restored = tailor::mt19937_from_string(text);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(restored(), expected[i]) << i;
  EXPECT_THROW(tailor::mt19937_from_string("1 2 3"), tailor::Error);
  EXPECT_THROW(tailor::mt19937_from_string(text + " 5"), tailor::Error);
}

// ---- checkpoint directories ----

TEST(Checkpoint, DirectoryNamesArePaddedSteps) {
  EXPECT_EQ(tailor::checkpoint_dir_name(50), "step_00000050");
  EXPECT_EQ(tailor::checkpoint_dir_name(0), "step_00000000");
  EXPECT_EQ(tailor::checkpoint_dir_name(123456789), "step_123456789");
  EXPECT_THROW(tailor::checkpoint_dir_name(-1), tailor::Error);
}

TEST(Checkpoint, RoundTripIsBitExact) {
  const fs::path run = tailor::test::fresh_path("checkpoint_roundtrip");
  torch::manual_seed(3);
  tailor::TensorMap model{{"transformer.h.0.attn.c_attn.weight", torch::randn({4, 12})},
                          {"transformer.ln_f.bias", torch::randn({4}).to(at::kBFloat16)},
                          {"transformer.wte.weight", torch::randn({10, 4}, at::kDouble)}};
  tailor::TensorMap optimizer{{"w.exp_avg", torch::randn({3, 3})},
                              {"step", at::scalar_tensor(17, at::kLong)}};
  tailor::TrainerState state = trainer_state_at(17);
  state.rng = tailor::capture_torch_rng_states();
  state.rng["sampler"] = tailor::mt19937_to_string(std::mt19937_64(5));
  state.extra = {{"best_eval_loss", 1.25}, {"note", "x"}};

  const fs::path dir = tailor::save_checkpoint(run, model, optimizer, state);
  EXPECT_EQ(dir, run / "checkpoints" / "step_00000017");
  EXPECT_EQ(tailor::read_file(run / "checkpoints" / "latest"), "step_00000017\n");
  ASSERT_EQ(tailor::latest_checkpoint(run), dir);

  const tailor::Checkpoint loaded = tailor::load_checkpoint(dir);
  ASSERT_EQ(loaded.model.size(), model.size());
  for (const auto& [name, t] : model) {
    ASSERT_EQ(loaded.model.count(name), 1u) << name;
    EXPECT_EQ(loaded.model.at(name).scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(loaded.model.at(name), t)) << name;
  }
  EXPECT_TRUE(torch::equal(loaded.optimizer.at("w.exp_avg"), optimizer.at("w.exp_avg")));
  EXPECT_EQ(loaded.optimizer.at("step").item<int64_t>(), 17);
  EXPECT_EQ(loaded.state.step, 17);
  EXPECT_EQ(loaded.state.epoch, 1);
  EXPECT_EQ(loaded.state.sample_position, 136);
  EXPECT_EQ(loaded.state.recipe_hash, "abc123");
  EXPECT_EQ(loaded.state.rng, state.rng);
  EXPECT_EQ(loaded.state.extra, state.extra);
}

TEST(Checkpoint, FailedSaveLeavesPreviousCheckpointAndLatest) {
  const fs::path run = tailor::test::fresh_path("checkpoint_failed");
  const fs::path first =
      tailor::save_checkpoint(run, toy_weights(1.0), toy_weights(2.0), trainer_state_at(5));
  tailor::SaveCheckpointOptions options;
  options.write_extra = [](const fs::path& tmp) {
    tailor::write_file_atomic(tmp / "recipe.yaml", "lr: 1\n");
    throw tailor::Error("test", "killed while writing");
  };
  EXPECT_THROW(tailor::save_checkpoint(run, toy_weights(3.0), toy_weights(4.0),
                                       trainer_state_at(10), options),
               tailor::Error);
  EXPECT_EQ(tailor::latest_checkpoint(run), first);
  EXPECT_EQ(tailor::read_file(run / "checkpoints" / "latest"), "step_00000005\n");
  EXPECT_FALSE(fs::exists(run / "checkpoints" / "step_00000010"));
  EXPECT_EQ(count_entries(run / "checkpoints"), 2);  // step_00000005 and latest, no temporaries
  const auto loaded = tailor::load_checkpoint(first);
  EXPECT_TRUE(torch::equal(loaded.model.at("w"), at::full({2, 3}, 1.0)));
  EXPECT_EQ(loaded.state.step, 5);
}

TEST(Checkpoint, WriteExtraFilesLandInTheCheckpoint) {
  const fs::path run = tailor::test::fresh_path("checkpoint_extra");
  tailor::SaveCheckpointOptions options;
  options.write_extra = [](const fs::path& tmp) {
    tailor::write_file_atomic(tmp / "recipe.yaml", "lr: 1\n");
  };
  const fs::path dir = tailor::save_checkpoint(run, toy_weights(1.0), toy_weights(2.0),
                                               trainer_state_at(3), options);
  EXPECT_EQ(tailor::read_file(dir / "recipe.yaml"), "lr: 1\n");
}

TEST(Checkpoint, KeepLastPrunesOlderOnes) {
  const fs::path run = tailor::test::fresh_path("checkpoint_prune");
  for (int step = 10; step <= 50; step += 10) {
    tailor::SaveCheckpointOptions options;
    options.keep_last = 2;
    tailor::save_checkpoint(run, toy_weights(step), toy_weights(0), trainer_state_at(step),
                            options);
  }
  const auto kept = tailor::list_checkpoints(run);
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0].filename(), "step_00000040");
  EXPECT_EQ(kept[1].filename(), "step_00000050");
  // keep_last <= 0 keeps everything.
  tailor::save_checkpoint(run, toy_weights(60), toy_weights(0), trainer_state_at(60));
  EXPECT_EQ(tailor::list_checkpoints(run).size(), 3u);
  // The checkpoint just written is kept even when older-numbered (a run resumed from step 40
  // that saves step 45 must not delete it in favour of the stale step 60).
  tailor::SaveCheckpointOptions keep_one;
  keep_one.keep_last = 1;
  tailor::save_checkpoint(run, toy_weights(45), toy_weights(0), trainer_state_at(45), keep_one);
  const auto after = tailor::list_checkpoints(run);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].filename(), "step_00000045");
}

TEST(Checkpoint, LatestFallsBackToScanningCompleteDirectories) {
  const fs::path run = tailor::test::fresh_path("checkpoint_scan");
  EXPECT_FALSE(tailor::latest_checkpoint(run).has_value());  // no run dir at all
  const fs::path root = run / "checkpoints";
  tailor::save_checkpoint(run, toy_weights(1), toy_weights(0), trainer_state_at(20));
  const fs::path s30 =
      tailor::save_checkpoint(run, toy_weights(1), toy_weights(0), trainer_state_at(30));
  tailor::save_checkpoint(run, toy_weights(1), toy_weights(0),
                          trainer_state_at(10));  // latest -> 10
  EXPECT_EQ(tailor::latest_checkpoint(run), root / "step_00000010");
  // An incomplete directory with a higher step and a leftover temporary are ignored.
  fs::create_directories(root / "step_00000040");
  tailor::write_file_atomic(root / "step_00000040" / "model.safetensors", "partial");
  fs::create_directories(root / ".step_00000050.tmp.99999999");
  tailor::write_file_atomic(root / "latest", "../../etc\n");  // corrupt
  EXPECT_EQ(tailor::latest_checkpoint(run), s30);
  tailor::write_file_atomic(root / "latest", "step_00000077\n");  // names a missing directory
  EXPECT_EQ(tailor::latest_checkpoint(run), s30);
  fs::remove(root / "latest");
  EXPECT_EQ(tailor::latest_checkpoint(run), s30);
}

TEST(Checkpoint, LoadRejectsMissingFilesAndBadState) {
  const fs::path run = tailor::test::fresh_path("checkpoint_bad");
  const fs::path dir =
      tailor::save_checkpoint(run, toy_weights(1), toy_weights(0), trainer_state_at(1));
  tailor::write_file_atomic(dir / "trainer_state.json", "{\"step\": \"one\"}");
  EXPECT_THROW(tailor::load_checkpoint(dir), tailor::Error);
  tailor::write_file_atomic(dir / "trainer_state.json", "{not json");
  EXPECT_THROW(tailor::load_checkpoint(dir), tailor::Error);
  fs::remove(dir / "optimizer.safetensors");
  EXPECT_THROW(tailor::load_checkpoint(dir), tailor::Error);
}

// ---- resume of a toy training run ----

namespace {

struct ToyRun {
  torch::nn::Sequential model;
  tailor::AdamW optimizer;
  std::mt19937_64 sampler;
  at::Tensor inputs, targets;  // the fixed toy dataset, (32, 4) and (32, 2)

  ToyRun(uint64_t seed, at::ScalarType dtype)
      : model(torch::nn::Linear(4, 16), torch::nn::ReLU(), torch::nn::Dropout(0.3),
              torch::nn::Linear(16, 16), torch::nn::ReLU(), torch::nn::Dropout(0.3),
              torch::nn::Linear(16, 2)),
        optimizer(tailor::AdamWConfig{0.9, 0.999, 1e-8, 0.1}),
        sampler(seed) {
    torch::manual_seed(static_cast<uint64_t>(seed));
    for (auto& p : model->parameters()) {  // re-initialise from the seeded generator
      at::NoGradGuard no_grad;
      p.uniform_(-0.5, 0.5);
    }
    model->to(dtype);
    model->train();
    for (const auto& item : model->named_parameters()) {
      optimizer.add_param(item.key(), item.value(), tailor::decays_by_default(item.value()));
    }
    torch::manual_seed(1000);  // the dataset is the same for every run
    inputs = torch::randn({32, 4});
    targets = torch::randn({32, 2});
    torch::manual_seed(seed + 1);
  }

  // One step: batch chosen by our sampler, noise and dropout from torch's generator.
  void step(int64_t step_index, const tailor::LrSchedule& schedule) {
    std::vector<int64_t> index;
    for (int i = 0; i < 8; ++i)
      index.push_back(static_cast<int64_t>(sampler() % 32));
    const at::Tensor idx = at::tensor(index, at::kLong);
    const at::Tensor x = inputs.index_select(0, idx) + 0.01 * torch::randn({8, 4});
    const at::Tensor y = targets.index_select(0, idx);
    const at::Tensor param = model->parameters()[0];
    const at::Tensor out = model->forward(x.to(param.scalar_type())).to(at::kFloat);
    torch::mse_loss(out, y).backward();
    tailor::clip_grad_norm_(model->parameters(), 0.5);
    optimizer.step(schedule.lr_at(step_index));
    optimizer.zero_grad();
  }

  tailor::TensorMap parameters() const {
    tailor::TensorMap map;
    for (const auto& item : model->named_parameters())
      map[item.key()] = item.value();
    return map;
  }
};

tailor::LrSchedule toy_schedule() {
  tailor::ScheduleConfig c;
  c.type = tailor::ScheduleType::kCosine;
  c.warmup_steps = 3;
  c.total_steps = 10;
  c.base_lr = 5e-2;
  c.min_lr_ratio = 0.1;
  return tailor::LrSchedule(c);
}

// Trains 10 steps straight and 5 + save + fresh objects + load + 5; returns whether the final
// parameters are identical. `restore_rng` = false shows the comparison can fail.
void check_resume(at::ScalarType dtype, bool restore_rng, bool expect_equal) {
  const fs::path run = tailor::test::fresh_path(
      std::string("checkpoint_resume_") + c10::toString(dtype) + (restore_rng ? "" : "_norng"));
  const auto schedule = toy_schedule();
  ToyRun straight(1234, dtype);
  for (int64_t s = 0; s < 10; ++s)
    straight.step(s, schedule);

  {
    ToyRun first(1234, dtype);
    for (int64_t s = 0; s < 5; ++s)
      first.step(s, schedule);
    tailor::TrainerState state;
    state.step = 5;
    state.rng = tailor::capture_torch_rng_states();
    state.rng["sampler"] = tailor::mt19937_to_string(first.sampler);
    tailor::save_checkpoint(run, first.parameters(), first.optimizer.export_state(), state);
  }
  torch::manual_seed(999);     // whatever the process did in between
  ToyRun resumed(777, dtype);  // different init, sampler and generator state
  const auto ckpt = tailor::load_checkpoint(*tailor::latest_checkpoint(run));
  {
    at::NoGradGuard no_grad;
    for (auto& item : resumed.model->named_parameters()) {
      item.value().copy_(ckpt.model.at(item.key()));
    }
  }
  resumed.optimizer.import_state(ckpt.optimizer);
  if (restore_rng) tailor::restore_torch_rng_states(ckpt.state.rng);
  resumed.sampler = tailor::mt19937_from_string(ckpt.state.rng["sampler"].get<std::string>());
  for (int64_t s = ckpt.state.step; s < 10; ++s)
    resumed.step(s, schedule);

  const auto a = straight.parameters();
  const auto b = resumed.parameters();
  bool all_equal = true;
  for (const auto& [name, t] : a) {
    EXPECT_EQ(b.at(name).scalar_type(), dtype);
    all_equal = all_equal && torch::equal(t, b.at(name));
  }
  EXPECT_EQ(all_equal, expect_equal);
}

}  // namespace

TEST(CheckpointResume, ToyModelFp32IsBitIdentical) {
  check_resume(at::kFloat, /*restore_rng=*/true, /*expect_equal=*/true);
}

TEST(CheckpointResume, ToyModelBf16WithMasterWeightsIsBitIdentical) {
  check_resume(at::kBFloat16, /*restore_rng=*/true, /*expect_equal=*/true);
}

TEST(CheckpointResume, WithoutRngRestoreDropoutDiverges) {
  check_resume(at::kFloat, /*restore_rng=*/false, /*expect_equal=*/false);
}
