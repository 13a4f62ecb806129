// AdamW, learning-rate schedules and gradient clipping against independent float64 references
// and hand-computed values.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include <torch/torch.h>

#include "common/error.h"
#include "test_support.h"
#include "train/optim/adamw.h"
#include "train/optim/grad_clip.h"
#include "train/optim/lr_schedule.h"

namespace {

using tailor::AdamW;
using tailor::AdamWConfig;

// Deterministic gradient values, rounded to the parameter's dtype so the reference sees exactly
// what the optimizer sees.
std::vector<double> grad_values(int64_t n, int step, double scale, at::ScalarType dtype) {
  std::vector<double> values(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    values[i] = scale * std::sin(0.37 * static_cast<double>(i) + 0.71 * step + 0.1);
  }
  const at::Tensor g = at::tensor(values).to(dtype).to(at::kDouble);
  return std::vector<double>(g.data_ptr<double>(), g.data_ptr<double>() + n);
}

// The textbook AdamW loop in float64, one element at a time (PyTorch AdamW semantics).
struct ReferenceAdamW {
  std::vector<double> p, m, v;
  double wd;
  AdamWConfig c;
  int t = 0;
  void step(const std::vector<double>& g, double lr) {
    t += 1;
    for (size_t i = 0; i < p.size(); ++i) {
      p[i] -= lr * wd * p[i];
      m[i] = c.beta1 * m[i] + (1 - c.beta1) * g[i];
      v[i] = c.beta2 * v[i] + (1 - c.beta2) * g[i] * g[i];
      const double mhat = m[i] / (1 - std::pow(c.beta1, t));
      const double vhat = v[i] / (1 - std::pow(c.beta2, t));
      p[i] -= lr * mhat / (std::sqrt(vhat) + c.eps);
    }
  }
};

void set_grad(at::Tensor& param, const std::vector<double>& g) {
  param.mutable_grad() = at::tensor(g, at::kDouble).reshape(param.sizes()).to(param.scalar_type());
}

void expect_all_close(const std::vector<double>& got, const std::vector<double>& want, double tol,
                      const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], tol * std::max(1.0, std::abs(want[i]))) << what << "[" << i << "]";
  }
}

// Runs 5 steps on a decayed matrix and a non-decayed bias and compares with the reference.
// A transposed (non-contiguous) matrix takes the general torch-op path instead of the fused one.
void check_against_reference(const AdamWConfig& config, double grad_scale, bool transposed) {
  at::Tensor w = at::arange(12, at::kFloat).reshape({3, 4}).div(7.0).sub(0.5);
  if (transposed) w = w.reshape({4, 3}).t();
  ASSERT_EQ(w.is_contiguous(), !transposed);
  at::Tensor b = at::linspace(-1.0, 1.0, 4, at::kFloat);
  w.set_requires_grad(true);
  b.set_requires_grad(true);
  AdamW opt(config);
  opt.add_param("w", w, /*decay=*/true);
  opt.add_param("b", b, /*decay=*/false);
  ReferenceAdamW ref_w{tailor::test::to_vec(w), std::vector<double>(12), std::vector<double>(12),
                       config.weight_decay, config};
  ReferenceAdamW ref_b{tailor::test::to_vec(b), std::vector<double>(4), std::vector<double>(4), 0.0,
                       config};
  for (int step = 0; step < 5; ++step) {
    const double lr = 1e-2 * (step + 1);
    const auto gw = grad_values(12, step, grad_scale, at::kFloat);
    const auto gb = grad_values(4, step + 100, grad_scale, at::kFloat);
    set_grad(w, gw);
    set_grad(b, gb);
    opt.step(lr);
    ref_w.step(gw, lr);
    ref_b.step(gb, lr);
  }
  EXPECT_EQ(opt.step_count(), 5);
  const auto state = opt.export_state();
  expect_all_close(tailor::test::to_vec(w), ref_w.p, 2e-6, "w");
  expect_all_close(tailor::test::to_vec(b), ref_b.p, 2e-6, "b");
  expect_all_close(tailor::test::to_vec(state.at("w.exp_avg")), ref_w.m, 1e-6 * grad_scale,
                   "w.exp_avg");
  expect_all_close(tailor::test::to_vec(state.at("w.exp_avg_sq")), ref_w.v,
                   1e-6 * grad_scale * grad_scale, "w.exp_avg_sq");
  expect_all_close(tailor::test::to_vec(state.at("b.exp_avg")), ref_b.m, 1e-6 * grad_scale,
                   "b.exp_avg");
  EXPECT_EQ(state.count("w.master"), 0u);
  EXPECT_EQ(state.at("step").item<int64_t>(), 5);
}

}  // namespace

TEST(AdamW, MatchesFloat64ReferenceWithAndWithoutDecay) {
  AdamWConfig config;
  config.weight_decay = 0.1;
  check_against_reference(config, 1.0, /*transposed=*/false);
}

TEST(AdamW, GeneralPathForNonContiguousParamsMatchesReference) {
  AdamWConfig config;
  config.weight_decay = 0.1;
  check_against_reference(config, 1.0, /*transposed=*/true);
}

TEST(AdamW, EpsilonIsAddedAfterBiasCorrectedSqrt) {
  // Gradients of size 1e-3 against eps = 1e-3: eps placement and bias correction both matter.
  AdamWConfig config;
  config.beta1 = 0.8;
  config.beta2 = 0.99;
  config.eps = 1e-3;
  config.weight_decay = 0.5;
  check_against_reference(config, 1e-3, /*transposed=*/false);
  check_against_reference(config, 1e-3, /*transposed=*/true);
}

TEST(AdamW, FirstStepMovesByLearningRateTimesSign) {
  // Hand-derived: at t = 1, mhat = g and vhat = g^2, so the update is lr * g / (|g| + eps).
  at::Tensor p = at::tensor({1.0f, -2.0f, 0.5f});
  p.set_requires_grad(true);
  AdamW opt(AdamWConfig{0.9, 0.999, 1e-8, 0.0});
  opt.add_param("p", p, false);
  p.mutable_grad() = at::tensor({3.0f, -0.25f, 0.0f});
  opt.step(0.1);
  EXPECT_NEAR(p[0].item<float>(), 0.9f, 1e-6);
  EXPECT_NEAR(p[1].item<float>(), -1.9f, 1e-6);
  EXPECT_FLOAT_EQ(p[2].item<float>(), 0.5f);  // zero gradient, no decay: unchanged
}

namespace {

// A strided (non-contiguous) parameter takes the general path, a contiguous one the fused path.
void check_bf16_master(bool strided) {
  AdamWConfig config;
  config.weight_decay = 0.01;
  // 256 has a bf16 spacing of 2: the lr 1e-2 updates below only accumulate in the master.
  const std::vector<double> init{1.0, -0.75, 3.5, 256.0, 0.0078125, -40.0};
  at::Tensor p;
  if (strided) {
    std::vector<double> spaced;
    for (double x : init)
      spaced.insert(spaced.end(), {x, 0.0});
    p = at::tensor(spaced).to(at::kBFloat16).slice(0, 0, 12, 2);
  } else {
    p = at::tensor(init).to(at::kBFloat16);
  }
  ASSERT_EQ(p.is_contiguous(), !strided);
  p.set_requires_grad(true);
  AdamW opt(config);
  opt.add_param("p", p, /*decay=*/true);
  ReferenceAdamW ref{tailor::test::to_vec(p), std::vector<double>(6), std::vector<double>(6),
                     config.weight_decay, config};
  for (int step = 0; step < 5; ++step) {
    const auto g = grad_values(6, step, 1.0, at::kBFloat16);
    set_grad(p, g);
    opt.step(1e-2);
    ref.step(g, 1e-2);
  }
  const auto state = opt.export_state();
  const at::Tensor master = state.at("p.master");
  EXPECT_EQ(master.scalar_type(), at::kFloat);
  EXPECT_EQ(state.at("p.exp_avg").scalar_type(), at::kFloat);
  expect_all_close(tailor::test::to_vec(master), ref.p, 2e-6, "master");
  EXPECT_TRUE(torch::equal(p, master.to(at::kBFloat16)));
  // The bf16 parameter is the reference rounded to bf16: within half a bf16 spacing (2^-8
  // relative).
  const auto got = tailor::test::to_vec(p);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_LE(std::abs(got[i] - ref.p[i]), std::abs(ref.p[i]) * std::ldexp(1.0, -8) + 1e-6) << i;
  }
  EXPECT_EQ(got[3], 256.0);           // the bf16 value did not move ...
  EXPECT_LT(ref.p[3], 256.0 - 0.04);  // ... although the true value did (kept by the master)
  EXPECT_NEAR(tailor::test::to_vec(master)[3], ref.p[3], 1e-4);
}

}  // namespace

TEST(AdamW, Bf16ParamsUpdateFp32MasterAndRoundBack) {
  check_bf16_master(/*strided=*/false);
}

TEST(AdamW, Bf16MasterGeneralPathForStridedParams) {
  check_bf16_master(/*strided=*/true);
}

TEST(AdamW, LargeTensorsProcessedInChunksMatchReference) {
  // 3 chunks of 2^17 elements plus a remainder of 184, fp32 in place and bf16 through the master.
  const int64_t n = 7 * 56200;
  AdamWConfig config;
  config.weight_decay = 0.1;
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    std::vector<double> init(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
      init[i] = std::cos(0.001 * static_cast<double>(i));
    at::Tensor p = at::tensor(init).to(dtype).reshape({n / 7, 7});
    p.set_requires_grad(true);
    AdamW opt(config);
    opt.add_param("p", p, true);
    ReferenceAdamW ref{tailor::test::to_vec(p), std::vector<double>(n), std::vector<double>(n),
                       config.weight_decay, config};
    for (int step = 0; step < 5; ++step) {
      const auto g = grad_values(n, step, 1.0, dtype);
      set_grad(p, g);
      opt.step(1e-2);
      ref.step(g, 1e-2);
    }
    const at::Tensor weights = dtype == at::kFloat ? p : opt.export_state().at("p.master");
    const at::Tensor err =
        (weights.detach().to(at::kDouble).reshape({-1}) - at::tensor(ref.p)).abs().max();
    EXPECT_LT(err.item<double>(), 2e-6) << c10::toString(dtype);
    if (dtype == at::kBFloat16) {
      EXPECT_TRUE(torch::equal(p, weights.to(at::kBFloat16)));
    }
  }
}

TEST(AdamW, ExportImportContinuesBitExactly) {
  auto make_params = [] {
    at::Tensor a = at::linspace(-2.0, 2.0, 20, at::kFloat).reshape({4, 5});
    at::Tensor b = at::linspace(-1.0, 3.0, 7, at::kFloat).to(at::kBFloat16);
    a.set_requires_grad(true);
    b.set_requires_grad(true);
    return std::make_pair(a, b);
  };
  AdamWConfig config;
  config.weight_decay = 0.1;
  auto [a1, b1] = make_params();
  AdamW first(config);
  first.add_param("a", a1, true);
  first.add_param("b", b1, false);
  auto run_step = [](AdamW& opt, at::Tensor& a, at::Tensor& b, int step) {
    set_grad(a, grad_values(20, step, 1.0, at::kFloat));
    set_grad(b, grad_values(7, step + 50, 1.0, at::kBFloat16));
    opt.step(3e-2);
    opt.zero_grad();
  };
  for (int step = 0; step < 3; ++step)
    run_step(first, a1, b1, step);
  const at::Tensor a_at_3 = a1.detach().clone(), b_at_3 = b1.detach().clone();

  // A fresh optimizer over copies of the parameters, state imported from a deep copy.
  tailor::TensorMap saved;
  for (const auto& kv : first.export_state())
    saved[kv.first] = kv.second.clone();
  auto [a2, b2] = make_params();
  {
    at::NoGradGuard no_grad;
    a2.copy_(a1);
    b2.copy_(b1);
  }
  AdamW second(config);
  second.add_param("a", a2, true);
  second.add_param("b", b2, false);
  second.import_state(saved);
  EXPECT_EQ(second.step_count(), 3);

  for (int step = 3; step < 5; ++step) {
    run_step(first, a1, b1, step);
    run_step(second, a2, b2, step);
  }
  EXPECT_TRUE(torch::equal(a1, a2));
  EXPECT_TRUE(torch::equal(b1, b2));
  const auto s1 = first.export_state();
  const auto s2 = second.export_state();
  ASSERT_EQ(s1.size(), s2.size());
  for (const auto& kv : s1)
    EXPECT_TRUE(torch::equal(kv.second, s2.at(kv.first))) << kv.first;
  // Without the imported state the continuation differs: the comparison above can fail.
  auto [a3, b3] = make_params();
  {
    at::NoGradGuard no_grad;
    a3.copy_(a_at_3);
    b3.copy_(b_at_3);
  }
  AdamW cold(config);
  cold.add_param("a", a3, true);
  cold.add_param("b", b3, false);
  for (int step = 3; step < 5; ++step)
    run_step(cold, a3, b3, step);
  EXPECT_FALSE(torch::equal(a3, a1));
}

TEST(AdamW, ImportRejectsMissingMismatchedOrUnknownState) {
  at::Tensor w = at::zeros({2, 3});
  AdamW opt;
  opt.add_param("w", w, true);
  tailor::TensorMap good = opt.export_state();
  auto missing = good;
  missing.erase("w.exp_avg_sq");
  EXPECT_THROW(opt.import_state(missing), tailor::Error);
  auto wrong_shape = good;
  wrong_shape["w.exp_avg"] = at::zeros({3, 2});
  EXPECT_THROW(opt.import_state(wrong_shape), tailor::Error);
  auto wrong_dtype = good;
  wrong_dtype["w.exp_avg"] = at::zeros({2, 3}, at::kDouble);
  EXPECT_THROW(opt.import_state(wrong_dtype), tailor::Error);
  auto unknown = good;
  unknown["v.exp_avg"] = at::zeros({2, 3});
  EXPECT_THROW(opt.import_state(unknown), tailor::Error);
  auto no_step = good;
  no_step.erase("step");
  EXPECT_THROW(opt.import_state(no_step), tailor::Error);
  EXPECT_NO_THROW(opt.import_state(good));
}

TEST(AdamW, RejectsDuplicateOrNonFloatParams) {
  AdamW opt;
  opt.add_param("w", at::zeros({2}), false);
  EXPECT_THROW(opt.add_param("w", at::zeros({2}), false), tailor::Error);
  EXPECT_THROW(opt.add_param("i", at::zeros({2}, at::kLong), false), tailor::Error);
  EXPECT_THROW(opt.add_param("step", at::zeros({2}), false), tailor::Error);
}

TEST(AdamW, SkipsParamsWithoutGradAndZeroGradClears) {
  at::Tensor used = at::ones({3});
  at::Tensor unused = at::ones({3});
  used.set_requires_grad(true);
  unused.set_requires_grad(true);
  AdamW opt(AdamWConfig{0.9, 0.999, 1e-8, 0.5});
  opt.add_param("used", used, true);
  opt.add_param("unused", unused, true);
  used.mutable_grad() = at::ones({3});
  opt.step(0.1);
  EXPECT_FALSE(torch::equal(used, at::ones({3})));
  EXPECT_TRUE(torch::equal(unused, at::ones({3})));  // not even decayed, as in PyTorch
  opt.zero_grad(/*set_to_none=*/false);
  EXPECT_TRUE(torch::equal(used.grad(), at::zeros({3})));
  opt.zero_grad();
  EXPECT_FALSE(used.grad().defined());
}

TEST(AdamW, DefaultDecayRuleExcludesOneDimensionalParams) {
  EXPECT_TRUE(tailor::decays_by_default(at::zeros({4, 3})));
  EXPECT_TRUE(tailor::decays_by_default(at::zeros({2, 2, 2})));
  EXPECT_FALSE(tailor::decays_by_default(at::zeros({4})));
  EXPECT_FALSE(tailor::decays_by_default(at::zeros({})));
}

// ---- schedules: warmup 10, total 110, so the decay phase is 100 steps ----

namespace {

double lr(tailor::ScheduleType type, int64_t step, double min_ratio = 0.0, int64_t warmup = 10) {
  tailor::ScheduleConfig c;
  c.type = type;
  c.warmup_steps = warmup;
  c.total_steps = 110;
  c.min_lr_ratio = min_ratio;
  c.base_lr = 3e-4;
  return tailor::LrSchedule(c).lr_at(step);
}

}  // namespace

TEST(LrSchedule, ConstantWithWarmup) {
  using tailor::ScheduleType;
  EXPECT_DOUBLE_EQ(lr(ScheduleType::kConstant, 0), 0.0);
  EXPECT_DOUBLE_EQ(lr(ScheduleType::kConstant, 5), 1.5e-4);
  EXPECT_DOUBLE_EQ(lr(ScheduleType::kConstant, 10), 3e-4);
  EXPECT_DOUBLE_EQ(lr(ScheduleType::kConstant, 60), 3e-4);
  EXPECT_DOUBLE_EQ(lr(ScheduleType::kConstant, 110), 3e-4);
}

TEST(LrSchedule, LinearDecayFollowsHuggingFace) {
  using tailor::ScheduleType;
  EXPECT_DOUBLE_EQ(lr(ScheduleType::kLinear, 0), 0.0);
  EXPECT_DOUBLE_EQ(lr(ScheduleType::kLinear, 9), 3e-4 * 0.9);
  EXPECT_DOUBLE_EQ(lr(ScheduleType::kLinear, 10), 3e-4);
  EXPECT_DOUBLE_EQ(lr(ScheduleType::kLinear, 60), 1.5e-4);   // (110 - 60) / 100
  EXPECT_DOUBLE_EQ(lr(ScheduleType::kLinear, 85), 0.75e-4);  // (110 - 85) / 100
  EXPECT_DOUBLE_EQ(lr(ScheduleType::kLinear, 110), 0.0);
  EXPECT_DOUBLE_EQ(lr(ScheduleType::kLinear, 150), 0.0);
  // min_lr_ratio 0.1: 0.1 + 0.9 * f
  EXPECT_DOUBLE_EQ(lr(ScheduleType::kLinear, 60, 0.1), 3e-4 * 0.55);
  EXPECT_DOUBLE_EQ(lr(ScheduleType::kLinear, 110, 0.1), 3e-5);
  EXPECT_DOUBLE_EQ(lr(ScheduleType::kLinear, 5, 0.1), 1.5e-4);  // warmup ignores the floor
}

TEST(LrSchedule, CosineDecayFollowsHuggingFace) {
  using tailor::ScheduleType;
  EXPECT_DOUBLE_EQ(lr(ScheduleType::kCosine, 0), 0.0);
  EXPECT_DOUBLE_EQ(lr(ScheduleType::kCosine, 4), 3e-4 * 0.4);
  EXPECT_DOUBLE_EQ(lr(ScheduleType::kCosine, 10), 3e-4);
  // progress 0.25: 0.5 * (1 + cos(pi/4)) = 0.5 + sqrt(2)/4
  EXPECT_NEAR(lr(ScheduleType::kCosine, 35), 3e-4 * (0.5 + std::sqrt(2.0) / 4), 1e-18);
  EXPECT_NEAR(lr(ScheduleType::kCosine, 60), 1.5e-4, 1e-18);  // progress 0.5
  EXPECT_NEAR(lr(ScheduleType::kCosine, 110), 0.0, 1e-18);
  EXPECT_NEAR(lr(ScheduleType::kCosine, 200), 0.0, 1e-18);  // stays at the floor
  // min_lr_ratio 0.1 (HF get_cosine_with_min_lr_schedule_with_warmup): f * 0.9 + 0.1
  EXPECT_NEAR(lr(ScheduleType::kCosine, 60, 0.1), 3e-4 * 0.55, 1e-18);
  EXPECT_NEAR(lr(ScheduleType::kCosine, 110, 0.1), 3e-5, 1e-18);
  EXPECT_NEAR(lr(ScheduleType::kCosine, 500, 0.1), 3e-5, 1e-18);
}

TEST(LrSchedule, NoWarmupStartsAtBaseLr) {
  EXPECT_DOUBLE_EQ(lr(tailor::ScheduleType::kCosine, 0, 0.0, 0), 3e-4);
  EXPECT_DOUBLE_EQ(lr(tailor::ScheduleType::kLinear, 55, 0.0, 0), 3e-4 * 0.5);
}

TEST(LrSchedule, RejectsInvalidConfigsAndNames) {
  tailor::ScheduleConfig c;
  c.total_steps = 10;
  c.warmup_steps = 11;
  EXPECT_THROW(tailor::LrSchedule{c}, tailor::Error);
  c.warmup_steps = 2;
  c.min_lr_ratio = 1.5;
  EXPECT_THROW(tailor::LrSchedule{c}, tailor::Error);
  c.min_lr_ratio = 0.0;
  c.total_steps = 0;
  c.warmup_steps = 0;
  EXPECT_THROW(tailor::LrSchedule{c}, tailor::Error);
  EXPECT_EQ(tailor::parse_schedule_type("cosine"), tailor::ScheduleType::kCosine);
  EXPECT_EQ(tailor::parse_schedule_type("linear"), tailor::ScheduleType::kLinear);
  EXPECT_EQ(tailor::parse_schedule_type("constant"), tailor::ScheduleType::kConstant);
  EXPECT_THROW(tailor::parse_schedule_type("Cosine"), tailor::Error);
}

// ---- gradient clipping ----

namespace {

at::Tensor with_grad(at::Tensor grad) {
  at::Tensor p = at::zeros_like(grad);
  p.set_requires_grad(true);
  p.mutable_grad() = grad;
  return p;
}

}  // namespace

TEST(GradClip, GlobalNormOverAllTensors) {
  // sqrt(3^2 + 4^2 + 12^2) = 13
  std::vector<at::Tensor> params{with_grad(at::tensor({3.0f, 4.0f})),
                                 with_grad(at::tensor({12.0f})),
                                 at::zeros({5})};  // no grad: skipped
  EXPECT_DOUBLE_EQ(tailor::grad_norm(params), 13.0);
  EXPECT_DOUBLE_EQ(tailor::clip_grad_norm_(params, 26.0), 13.0);
  EXPECT_TRUE(torch::equal(params[0].grad(), at::tensor({3.0f, 4.0f})));  // under the limit
}

TEST(GradClip, ScalesByMaxNormOverNormPlusEpsilon) {
  std::vector<at::Tensor> params{with_grad(at::tensor({3.0f, 4.0f})),
                                 with_grad(at::tensor({12.0}, at::kDouble))};
  EXPECT_DOUBLE_EQ(tailor::clip_grad_norm_(params, 6.5), 13.0);
  const double coef = 6.5 / (13.0 + 1e-6);
  EXPECT_FLOAT_EQ(params[0].grad()[0].item<float>(), static_cast<float>(3.0 * coef));
  EXPECT_FLOAT_EQ(params[0].grad()[1].item<float>(), static_cast<float>(4.0 * coef));
  EXPECT_DOUBLE_EQ(params[1].grad()[0].item<double>(), 12.0 * coef);
  EXPECT_NEAR(tailor::grad_norm(params), 6.5, 1e-5);
}

TEST(GradClip, LargeTensorsAreSummedInChunks) {
  // 3 * 2^20 + 5 elements of 0.25 (past the 2^20 chunk size): sum of squares n/16 exactly.
  const int64_t n = 3 * (int64_t{1} << 20) + 5;
  std::vector<at::Tensor> params{with_grad(at::full({n}, 0.25f)),
                                 with_grad(at::full({7}, 0.5, at::kBFloat16))};
  const double expected = std::sqrt(static_cast<double>(n) / 16.0 + 7 * 0.25);
  EXPECT_NEAR(tailor::grad_norm(params), expected, 1e-12 * expected);
}

TEST(GradClip, NonFiniteNormIsReturnedAndGradsUntouched) {
  std::vector<at::Tensor> params{with_grad(at::tensor({1.0f, INFINITY})),
                                 with_grad(at::tensor({2.0f}))};
  EXPECT_TRUE(std::isinf(tailor::clip_grad_norm_(params, 1.0)));
  EXPECT_FLOAT_EQ(params[1].grad()[0].item<float>(), 2.0f);
  std::vector<at::Tensor> nan_params{with_grad(at::tensor({NAN, 1.0f}))};
  EXPECT_TRUE(std::isnan(tailor::clip_grad_norm_(nan_params, 1.0)));
  EXPECT_FLOAT_EQ(nan_params[0].grad()[1].item<float>(), 1.0f);
  EXPECT_THROW(tailor::clip_grad_norm_(params, 0.0), tailor::Error);
}
