#include "cli/bench_dpo_users.h"

#include <chrono>
#include <cstdio>

#include <torch/torch.h>

#include "common/device.h"
#include "common/process_memory.h"
#include "models/core/adapter_bank.h"
#include "models/core/lora.h"
#include "models/registry.h"
#include "train/optim/adamw.h"
#include "train/per_user/dpo_step.h"

namespace tailor::cli {
namespace {

CausalLM base_model(const std::string& preset, const at::Device& device = at::kCPU) {
  nlohmann::json config = preset_config(preset);
  for (const char* key : {"resid_pdrop", "embd_pdrop", "attn_pdrop", "attention_dropout"})
    if (config.contains(key)) config[key] = 0.0;
  torch::manual_seed(0);
  CausalLM model = causal_lm_from_config(config, "bench preset", /*init_weights=*/true);
  model->to(device);
  model->train();
  return model;
}

int64_t bytes_of(const torch::nn::Module& model, bool trainable) {
  int64_t bytes = 0;
  for (const auto& p : model.parameters())
    if (p.requires_grad() == trainable) bytes += p.numel() * p.element_size();
  return bytes;
}

AdamW optimizer_for(torch::nn::Module& model) {
  AdamW optimizer(AdamWConfig{0.9, 0.999, 1e-8, 0.0});
  for (const auto& item : model.named_parameters())
    if (item.value().requires_grad())
      optimizer.add_param(item.key(), item.value(), decays_by_default(item.value()));
  return optimizer;
}

}  // namespace

void reset_peak(const at::Device& device) {
  if (device.is_cuda())
    reset_device_peak(device);
  else
    reset_peak_rss();
}

double peak_mib(const at::Device& device) {
  return device.is_cuda() ? device_peak_allocated_mib(device) : peak_rss_mib();
}

nlohmann::json bench_dpo_users(const DpoUsersBench& o) {
  const at::Device device =
      resolve_device(device_type_from_name(o.device, "--device"), 0, "--device");
  // The pairs: random ids, every user o.pairs_per_user pairs per step.
  std::vector<std::string> names;
  for (int64_t u = 0; u < o.users; ++u)
    names.push_back("user" + std::to_string(u));
  const int64_t vocab = base_model(o.preset)->vocab_size();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  const auto ids = [&](int64_t n) {
    const at::Tensor t = at::randint(1, vocab, {n}, gen, at::kLong).to(at::kInt);
    return std::vector<int32_t>(t.data_ptr<int32_t>(), t.data_ptr<int32_t>() + n);
  };
  std::vector<data::UserPair> list;
  for (int64_t i = 0; i < o.steps * o.pairs_per_user; ++i)
    for (const auto& name : names)
      list.push_back(
          {name, ids(o.prompt_tokens), ids(o.response_tokens), ids(o.response_tokens), "", "", ""});
  const data::UserPairs pairs(std::move(list));
  // pair index of (step s, pair i of that step, user u)
  const auto index = [&](int64_t s, int64_t i, int64_t u) {
    return (s * o.pairs_per_user + i) * o.users + u;
  };
  data::CollateOptions collate;
  collate.max_length = o.prompt_tokens + o.response_tokens;
  collate.eos_id = 0;
  const LoraConfig lora{16, 32.0, 0.0, false, base_model(o.preset)->lora_target_names()};
  const DpoStepConfig step_config{{DpoLossType::kSigmoid, 0.1, 0.0}, 0.0};
  const double tokens =
      static_cast<double>(o.steps * o.users * o.pairs_per_user * 2 * collate.max_length);

  // N single-adapter runs, one after another (each holds its own copy of the base).
  reset_peak(device);
  double single_s = 0, single_build_s = 0;
  int64_t single_base_bytes = 0, single_adapter_bytes = 0;
  for (int64_t u = 0; u < o.users; ++u) {
    const double built = now_seconds();
    CausalLM model = base_model(o.preset, device);
    AdapterBank bank(*model, lora, {names[static_cast<size_t>(u)]});
    AdamW optimizer = optimizer_for(*model);
    single_base_bytes += bytes_of(*model, false);
    single_adapter_bytes += bytes_of(*model, true);
    const double start = now_seconds();
    single_build_s += start - built;
    for (int64_t s = 0; s < o.steps; ++s) {
      std::vector<int64_t> mine;
      for (int64_t i = 0; i < o.pairs_per_user; ++i)
        mine.push_back(index(s, i, u));
      dpo_forward_backward(*model, bank, pairs.collate(mine, collate), step_config, device);
      optimizer.step(1e-4);
      optimizer.zero_grad();
    }
    synchronize(device);
    single_s += now_seconds() - start;
  }
  const double single_rss = peak_mib(device);

  // One multi-adapter run: every step one mixed batch of all users' pairs.
  reset_peak(device);
  const double built = now_seconds();
  CausalLM model = base_model(o.preset, device);
  AdapterBank bank(*model, lora, names);
  AdamW optimizer = optimizer_for(*model);
  const double start = now_seconds();
  const double multi_build_s = start - built;
  for (int64_t s = 0; s < o.steps; ++s) {
    std::vector<int64_t> mixed;
    for (int64_t i = 0; i < o.pairs_per_user; ++i)
      for (int64_t u = 0; u < o.users; ++u)
        mixed.push_back(index(s, i, u));
    dpo_forward_backward(*model, bank, pairs.collate(mixed, collate), step_config, device);
    optimizer.step(1e-4);
    optimizer.zero_grad();
  }
  synchronize(device);
  const double multi_s = now_seconds() - start;
  const double multi_rss = peak_mib(device);

  nlohmann::json out = {{"suite", "dpo_users"},
                        {"preset", o.preset},
                        {"users", o.users},
                        {"steps", o.steps},
                        {"pairs_per_user_per_step", o.pairs_per_user},
                        {"sequence_tokens", collate.max_length},
                        {"threads", at::get_num_threads()},
                        {"device", device.str()},
                        {"multi",
                         {{"seconds", multi_s},
                          {"build_seconds", multi_build_s},
                          {"tokens_per_s", tokens / multi_s},
                          {"peak_rss_mib", multi_rss},
                          {"base_bytes", bytes_of(*model, false)},
                          {"adapter_bytes", bytes_of(*model, true)}}},
                        {"single",
                         {{"seconds", single_s},
                          {"build_seconds", single_build_s},
                          {"tokens_per_s", tokens / single_s},
                          {"peak_rss_mib", single_rss},
                          {"base_bytes", single_base_bytes},
                          {"adapter_bytes", single_adapter_bytes}}},
                        {"speedup", single_s / multi_s}};
  std::printf(
      "[dpo_users] %s, %lld users, %lld steps of %lld pairs per user (%lld tokens each), "
      "%d threads, %s\n%-28s %10s %10s %12s %12s %16s\n",
      o.preset.c_str(), (long long)o.users, (long long)o.steps, (long long)o.pairs_per_user,
      (long long)collate.max_length, at::get_num_threads(), device.str().c_str(), "run", "build s",
      "steps s", "tokens/s", "peak MiB", "base MiB held");
  std::printf("%-28s %10.2f %10.2f %12.1f %12.0f %16.1f\n", "one multi-adapter run", multi_build_s,
              multi_s, tokens / multi_s, multi_rss, bytes_of(*model, false) / 1048576.0);
  std::printf("%-28s %10.2f %10.2f %12.1f %12.0f %16.1f\n",
              (std::to_string(o.users) + " single-adapter runs").c_str(), single_build_s, single_s,
              tokens / single_s, single_rss, single_base_bytes / 1048576.0);
  std::printf("speed-up: steps %.2fx, with building the models %.2fx\n", single_s / multi_s,
              (single_s + single_build_s) / (multi_s + multi_build_s));
  return out;
}

}  // namespace tailor::cli
