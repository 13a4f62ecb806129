// The reward stage's gradient accumulation and precision (train.grad_accum, train.precision):
// - reward_step_accumulate in micro-batches gives the loss and gradient of the whole batch
//   (reward_step_backward, which tests/test_vpl.cpp checks against finite differences), for
//   Bradley-Terry and VPL, every grad_surgery, with the contrastive term, in float64;
// - the stage trained with batch_size B x grad_accum K ends with the same parameters as with
//   batch_size B*K x grad_accum 1 (float32), for Bradley-Terry and VPL;
// - bf16 runs (bf16 weights with fp32 master copies) and bf16_autocast runs train, and a bf16
//   export loads back as the weights the run ended with;
// - the UltraFeedback recipes are the batch 4 x grad-accum 8 their comments promise.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "models/heads/reward_model.h"
#include "models/heads/vpl.h"
#include "models/io/reward_export.h"
#include "models/io/vpl_export.h"
#include "reward_test_support.h"
#include "stages/reward/reward_recipe.h"
#include "stages/reward/reward_stage.h"
#include "stages/reward/reward_step.h"
#include "test_support.h"
#include "train/checkpoint/checkpoint.h"

namespace tailor {
namespace {
namespace fs = std::filesystem;
using testing::read_jsonl;
using testing::tiny_reward_recipe;

// ---- reward_step_accumulate on a small float64 model.
//
// Backbone: features = tanh([x_chosen; x_rejected] W^T) (W trainable); VPL decodes the reward
// from the features and z with VplHeads, Bradley-Terry takes features . v (v trainable).

constexpr int64_t kE = 4, kF = 3, kL = 3, kC = 2;

struct Model {
  at::Tensor W, v;
  VplHeads heads{nullptr};
  std::vector<at::Tensor> params(bool vae) const {
    std::vector<at::Tensor> out{W};
    if (!vae) {
      out.push_back(v);
      return out;
    }
    for (const auto& p : heads->parameters())
      out.push_back(p);
    return out;
  }
};

Model accum_model() {
  torch::manual_seed(21);
  VplConfig c;
  c.embed_dim = kE;
  c.hidden_dim = 6;
  c.latent_dim = kL;
  c.logvar_clamp = 0;
  Model m;
  m.heads = VplHeads(c);
  m.heads->to(at::kDouble);
  m.W = (0.7 * at::randn({kE, kF}, at::kDouble)).requires_grad_();
  m.v = at::randn({kE}, at::kDouble).requires_grad_();
  return m;
}

struct AccumBatch {
  at::Tensor x_chosen, x_rejected, context, eps;
  std::vector<int32_t> users;
};

AccumBatch small_batch(const std::vector<int32_t>& users) {
  torch::manual_seed(22);
  const int64_t N = static_cast<int64_t>(users.size());
  AccumBatch b;
  b.users = users;
  b.x_chosen = at::randn({N, kF}, at::kDouble);
  b.x_rejected = at::randn({N, kF}, at::kDouble);
  const at::Tensor centre = 1.5 * at::randn({4, 1, 2, kE}, at::kDouble);
  b.context = 0.3 * at::randn({N, kC, 2, kE}, at::kDouble);
  for (int64_t i = 0; i < N; ++i)
    b.context[i] += centre[users[i]];
  b.eps = at::randn({N, kL}, at::kDouble);
  return b;
}

at::Tensor features(const Model& m, const at::Tensor& xc, const at::Tensor& xr) {
  return at::tanh(at::matmul(at::cat({xc, xr}, 0), m.W.t()));
}

RewardScores bt_scores(const Model& m, const at::Tensor& e) {
  const int64_t B = e.size(0) / 2;
  const at::Tensor r = at::matmul(e, m.v);
  RewardScores s;
  s.chosen = r.slice(0, 0, B);
  s.rejected = r.slice(0, B, 2 * B);
  return s;
}

// The whole batch in one pass, as reward_step_backward's callers do.
nlohmann::json whole_batch_step(Model& m, const AccumBatch& b, const RewardLossOptions& o) {
  const at::Tensor e = features(m, b.x_chosen, b.x_rejected);
  const RewardScores s = o.vae ? vpl_scores(m.heads, e, b.context, b.eps) : bt_scores(m, e);
  std::mt19937_64 rng(5);
  return reward_step_backward(s, b.users, m.params(o.vae), o, rng);
}

// The stage's way: the step's latents once, the backbone per micro-batch of `micro` examples.
nlohmann::json micro_batch_step(Model& m, const AccumBatch& b, const RewardLossOptions& o,
                                int64_t micro, int* passes) {
  at::Tensor mean, logvar, z;
  if (o.vae) {
    std::tie(mean, logvar) = m.heads->encode(b.context);
    z = mean + at::exp(0.5 * logvar) * b.eps;
  }
  const auto forward = [&](int64_t begin, int64_t end) {
    ++*passes;
    const at::Tensor e =
        features(m, b.x_chosen.slice(0, begin, end), b.x_rejected.slice(0, begin, end));
    if (!o.vae) return bt_scores(m, e);
    const at::Tensor zb = z.slice(0, begin, end);
    const at::Tensor r = m.heads->decode(e, at::cat({zb, zb}, 0));
    RewardScores s;
    s.chosen = r.slice(0, 0, end - begin);
    s.rejected = r.slice(0, end - begin, 2 * (end - begin));
    return s;
  };
  std::mt19937_64 rng(5);
  return reward_step_accumulate(forward, micro, b.users, mean, logvar, m.params(o.vae), o, rng);
}

std::vector<double> param_grads(const std::vector<at::Tensor>& params) {
  std::vector<double> out;
  for (const auto& p : params) {
    const at::Tensor g = p.grad().contiguous();
    out.insert(out.end(), g.data_ptr<double>(), g.data_ptr<double>() + g.numel());
  }
  return out;
}

// 7 examples of users interleaved with unequal counts, so micro-batches of 2, 3 or 1 miss some
// users and split others; every term of the loss (BT, KL, contrastive) is on. MGDA with two
// users (its closed form: Frank-Wolfe's stopping rule would blur a float32-level comparison).
TEST(RewardAccum, MicroBatchesGiveTheWholeBatchLossAndGradient) {
  struct Case {
    bool vae;
    std::string surgery;
    std::vector<int32_t> users;
  };
  const std::vector<int32_t> three = {1, 0, 1, 2, 0, 2, 1}, two = {1, 0, 1, 1, 0, 0, 1};
  const std::vector<Case> cases = {{false, "none", three},  {false, "pcgrad", three},
                                   {false, "mgda", two},    {true, "none", three},
                                   {true, "pcgrad", three}, {true, "mgda", two}};
  for (const Case& c : cases) {
    SCOPED_TRACE((c.vae ? "vae " : "bt ") + c.surgery);
    Model m = accum_model();
    const AccumBatch b = small_batch(c.users);
    RewardLossOptions o;
    o.vae = c.vae;
    o.kl_weight = c.vae ? 0.05 : 0.0;
    o.contrastive = c.vae ? 0.5 : 0.0;
    o.grad_surgery = *enum_from_name(grad_surgery_names(), c.surgery);
    const nlohmann::json want_record = whole_batch_step(m, b, o);
    const std::vector<double> want = param_grads(m.params(c.vae));
    // Surgery flattens per-user gradients to float32 (grad_surgery.h), so those compare at
    // float32 precision; without surgery the step is float64 throughout.
    const double tol = (c.surgery == "none" ? 1e-12 : 1e-6) * test::max_abs(want);
    for (const int64_t micro : {1, 2, 3, 7, 100}) {
      SCOPED_TRACE("micro-batch " + std::to_string(micro));
      int passes = 0;
      const nlohmann::json record = micro_batch_step(m, b, o, micro, &passes);
      EXPECT_EQ(passes, (7 + micro - 1) / micro);
      EXPECT_LT(test::max_abs_diff(param_grads(m.params(c.vae)), want), tol);
      for (const char* key : {"loss", "bt_loss", "batch_accuracy", "kl", "contrastive"}) {
        if (!want_record.contains(key)) continue;
        ASSERT_TRUE(record.contains(key)) << key;
        EXPECT_NEAR(record[key].get<double>(), want_record[key].get<double>(), 1e-12) << key;
      }
    }
  }
}

// ---- The stage: B x K against B*K x 1.

RewardRecipe tiny_accum_recipe(const std::string& variant, const fs::path& out,
                               std::vector<std::string> extra = {}) {
  std::vector<std::string> overrides = {"train.eval_every=0", "train.log_every=1"};
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  return tiny_reward_recipe(variant, out, overrides);
}

// The train records of metrics.jsonl, one per step with train.log_every=1: `key` of each.
std::vector<double> train_records(const fs::path& run, const std::string& key) {
  std::vector<double> out;
  for (const auto& r : read_jsonl(run / "metrics.jsonl"))
    if (r.contains(key) && !r.contains("eval/accuracy")) out.push_back(r[key].get<double>());
  return out;
}

double l2(const at::Tensor& t) {
  return t.to(at::kDouble).norm().item<double>();
}

class RewardAccumStage : public ::testing::TestWithParam<std::string> {};

// 4 steps of 16 pairs: 4 micro-batches of 4 and 2 of 8 against one batch of 16. Every parameter
// tensor ends within 1e-5 relative (L2 norm of the difference / L2 norm of the tensor), and each
// step's loss and pre-clip gradient norm agree within 1e-5 relative.
// optimizer.eps is 1e-4 here, not 1e-8: Adam divides each gradient entry by its own RMS, so an
// entry whose true gradient is 0 (a bias added to both rewards of a pair, e.g. VPL's decoder
// output bias; GPT-2's attention key bias, which shifts every logit of a softmax row alike) moves
// by up to lr per step on float rounding noise alone, in a direction that changes with the order
// of float sums. Measured with eps 1e-8: VPL's decoder.4.bias 3e-3 and c_attn.bias 8e-5 apart.
// With eps 1e-4 such noise barely moves a weight, and the update still depends on the gradient's
// scale (with eps 1e-8 Adam is nearly blind to a wrongly scaled accumulated gradient; the
// gradient norms are compared too). Bradley-Terry's final LayerNorm bias adds score . beta to
// both rewards, so its true gradient is 0: it must stay within 1e-6 of its initial 0 in both runs.
// Measured (OMP_NUM_THREADS=1): largest differences 6.5e-6 (bt, ln_1.bias, which starts at 0)
// and 2.4e-6 (vae_adaptive).
TEST_P(RewardAccumStage, BatchTimesAccumTrainsLikeOneBigBatch) {
  testing::InRepo in_repo;
  const std::string variant = GetParam();
  const fs::path root = fs::temp_directory_path() / ("tailor_test_rm_accum_" + variant);
  fs::remove_all(root);
  struct Run {
    Checkpoint last;
    std::vector<double> loss, grad_norm;
  };
  const auto run = [&](int64_t batch, int64_t accum) {
    const fs::path out = root / ("b" + std::to_string(batch) + "x" + std::to_string(accum));
    const RewardRecipe r =
        tiny_accum_recipe(variant, out,
                          {"train.max_steps=4", "train.batch_size=" + std::to_string(batch),
                           "train.grad_accum=" + std::to_string(accum), "train.checkpoint_every=4",
                           "optimizer.eps=1e-4"});
    run_reward_stage(r);
    const auto latest = latest_checkpoint(out);
    EXPECT_TRUE(latest.has_value());
    EXPECT_EQ(latest->filename(), "step_00000004");
    return Run{load_checkpoint(*latest), train_records(out, "loss"),
               train_records(out, "grad_norm")};
  };
  const Run whole = run(16, 1);
  ASSERT_EQ(whole.loss.size(), 4u);
  ASSERT_EQ(whole.grad_norm.size(), 4u);
  for (const auto& [batch, accum] : {std::pair<int64_t, int64_t>{4, 4}, {8, 2}}) {
    SCOPED_TRACE(std::to_string(batch) + " x " + std::to_string(accum));
    const Run acc = run(batch, accum);
    ASSERT_EQ(acc.last.model.size(), whole.last.model.size());
    double worst = 0;
    std::string worst_name;
    for (const auto& [name, want] : whole.last.model) {
      const auto it = acc.last.model.find(name);
      ASSERT_NE(it, acc.last.model.end()) << name;
      if (variant == "bt" && name == "transformer.ln_f.bias") {
        EXPECT_LT(l2(want), 1e-6);
        EXPECT_LT(l2(it->second), 1e-6);
        continue;
      }
      const double rel = l2(it->second - want) / std::max(l2(want), 1e-30);
      if (rel > worst) worst = rel, worst_name = name;
      EXPECT_LE(rel, 1e-5) << name;
    }
    std::cerr << variant << " " << batch << " x " << accum
              << ": largest relative parameter difference " << worst << " (" << worst_name << ")\n";
    ASSERT_EQ(acc.loss.size(), whole.loss.size());
    ASSERT_EQ(acc.grad_norm.size(), whole.grad_norm.size());
    for (size_t i = 0; i < whole.loss.size(); ++i) {
      EXPECT_NEAR(acc.loss[i], whole.loss[i], 1e-5 * std::abs(whole.loss[i])) << "step " << i + 1;
      EXPECT_NEAR(acc.grad_norm[i], whole.grad_norm[i], 1e-5 * whole.grad_norm[i])
          << "step " << i + 1;
    }
  }
  fs::remove_all(root);
}

INSTANTIATE_TEST_SUITE_P(Methods, RewardAccumStage,
                         ::testing::Values("bt", "vae_adaptive", "vae_pcgrad", "vae_contrastive"));

// ---- Precision.

TEST(RewardPrecision, UltraFeedbackRecipesAreBatch4TimesGradAccum8) {
  testing::InRepo in_repo;
  for (const char* variant :
       {"bt", "vae", "vae_adaptive", "vae_pcgrad", "vae_mgda", "vae_contrastive"}) {
    SCOPED_TRACE(variant);
    const RewardRecipe r = load_reward_recipe("recipes/rm_uf_" + std::string(variant) + ".yaml");
    EXPECT_EQ(r.train.batch_size, 4);
    EXPECT_EQ(r.train.grad_accum, 8);
    EXPECT_EQ(pairs_per_step(r), 32);
    EXPECT_EQ(r.train.precision, Precision::kFp32);
  }
}

double mean_of(const std::vector<double>& v, size_t begin, size_t end) {
  double sum = 0;
  for (size_t i = begin; i < end; ++i)
    sum += v[i];
  return sum / static_cast<double>(end - begin);
}

class RewardPrecisionRun : public ::testing::TestWithParam<std::string> {};

// Every tensor of a loaded export equals the run's last checkpoint (bf16 -> the loaded dtype is
// exact); `prefix` maps the loaded names to the checkpoint's.
void expect_same_weights(const torch::nn::Module& loaded, const TensorMap& checkpoint,
                         const std::string& prefix) {
  int64_t compared = 0;
  for (const auto& item : loaded.named_parameters()) {
    const auto it = checkpoint.find(prefix + item.key());
    if (it == checkpoint.end()) continue;  // e.g. a tied lm_head the checkpoint names once
    EXPECT_EQ(it->second.scalar_type(), at::kBFloat16) << it->first;
    EXPECT_TRUE(at::equal(item.value().detach(), it->second.to(item.value().scalar_type())))
        << it->first;
    ++compared;
  }
  EXPECT_GT(compared, 5);
}

// One simulated user (a reward one Bradley-Terry model can learn), 100 steps of 8 x grad_accum 2
// pairs, in fp32, bf16 and bf16_autocast. Targets, for every precision: the mean train loss of
// steps 91-100 at least 0.15 below that of steps 1-10 (which start at ~0.69 = ln 2), held-out
// accuracy >= 0.7 (0.5 = chance), and within 0.05 of fp32's last-10-step loss. Measured
// (seed 0, OMP_NUM_THREADS=1), loss steps 1-10 -> 91-100 and accuracy:
//   bt   fp32 0.691 -> 0.410, 0.855; bf16 0.692 -> 0.399, 0.827; bf16_autocast 0.691 -> 0.411,
//   0.855 vae  fp32 0.684 -> 0.331, 0.873; bf16 0.694 -> 0.356, 0.764; bf16_autocast 0.684 ->
//   0.342, 0.873
// The bf16 run's checkpoint holds bf16 weights and fp32 master copies, and its export (config
// torch_dtype bfloat16) loads back as exactly those weights; the Bradley-Terry export re-scores
// held-out responses in bf16 as the run did.
TEST_P(RewardPrecisionRun, TrainsInEveryPrecisionAndTheBf16ExportLoads) {
  testing::InRepo in_repo;
  const std::string variant = GetParam();
  const fs::path root = fs::temp_directory_path() / ("tailor_test_rm_precision_" + variant);
  fs::remove_all(root);
  double fp32_loss = 0;
  for (const std::string precision : {"fp32", "bf16", "bf16_autocast"}) {
    SCOPED_TRACE(precision);
    const fs::path out = root / precision;
    run_reward_stage(tiny_accum_recipe(
        variant, out,
        {"users.kind=uniform", "users.count=1", "users.conflict_only=false", "train.max_steps=100",
         "train.batch_size=8", "train.grad_accum=2", "train.checkpoint_every=100",
         "train.precision=" + precision,
         "export.enabled=" + std::string(precision == "bf16" ? "true" : "false")}));
    const auto losses = train_records(out, "loss");
    const auto summary = nlohmann::json::parse(read_file(out / "summary.json"));
    ASSERT_EQ(losses.size(), 100u);
    const double first = mean_of(losses, 0, 10), last = mean_of(losses, 90, 100);
    std::cerr << variant << " " << precision << ": train loss steps 1-10 " << first
              << ", steps 91-100 " << last << "; held-out accuracy " << summary["accuracy"]
              << ", loss " << summary["loss"] << "\n";
    EXPECT_EQ(summary["precision"], precision);
    EXPECT_EQ(summary["pairs_per_step"], 16);
    EXPECT_LT(last, first - 0.15);
    EXPECT_GE(summary["accuracy"].get<double>(), 0.7);
    if (precision == "fp32")
      fp32_loss = last;
    else
      EXPECT_NEAR(last, fp32_loss, 0.05);
    if (precision != "bf16") continue;

    const Checkpoint ckpt = load_checkpoint(*latest_checkpoint(out));
    int64_t masters = 0;
    for (const auto& [name, t] : ckpt.optimizer) {
      if (name.size() < 7 || name.compare(name.size() - 7, 7, ".master") != 0) continue;
      EXPECT_EQ(t.scalar_type(), at::kFloat) << name;
      ++masters;
    }
    EXPECT_GT(masters, 5);
    if (variant == "bt") {
      const auto config = nlohmann::json::parse(read_file(out / "export" / "config.json"));
      EXPECT_EQ(config["torch_dtype"], "bfloat16");
      RewardModel model = load_reward_model(out / "export", {}, at::kBFloat16);
      expect_same_weights(*model, ckpt.model, "");
      expect_same_weights(*load_reward_model(out / "export"), ckpt.model, "");
      model->eval();
      torch::NoGradGuard no_grad;
      int checked = 0;
      double worst = 0;
      for (const auto& p : read_jsonl(out / "eval_predictions.jsonl")) {
        const auto ids = p["chosen_ids"].get<std::vector<int64_t>>();
        const at::Tensor input = at::tensor(ids, at::kLong).view({1, -1});
        const double reward = model->forward(input, at::ones_like(input))[0][0].item<double>();
        const double want = p["reward_chosen"].get<double>();
        worst = std::max(worst, std::abs(reward - want));
        EXPECT_NEAR(reward, want, 0.02 * std::max(1.0, std::abs(want)));
        if (++checked == 10) break;
      }
      EXPECT_EQ(checked, 10);
      std::cerr << "bf16 export re-scores 10 held-out responses within " << worst << "\n";
    } else {
      const auto config =
          nlohmann::json::parse(read_file(out / "export" / "backbone" / "config.json"));
      EXPECT_EQ(config["torch_dtype"], "bfloat16");
      const auto [backbone, heads] = load_vpl_export(out / "export");
      expect_same_weights(*backbone, ckpt.model, "");
      expect_same_weights(*heads, ckpt.model, "vpl.");
    }
  }
  fs::remove_all(root);
}

INSTANTIATE_TEST_SUITE_P(Methods, RewardPrecisionRun, ::testing::Values("bt", "vae"));

}  // namespace
}  // namespace tailor
