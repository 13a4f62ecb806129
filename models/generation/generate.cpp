#include "models/generation/generate.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "common/error.h"
#include "common/seeded_random.h"
#include "models/core/kv_cache.h"
#include "models/generation/sampling.h"

namespace tailor {

namespace {

// Puts the model in eval mode and restores its training mode on every exit.
class EvalModeGuard {
 public:
  explicit EvalModeGuard(CausalLMImpl& model) : model_(model), was_training_(model.is_training()) {
    model_.eval();
  }
  ~EvalModeGuard() { model_.train(was_training_); }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  CausalLMImpl& model_;
  bool was_training_;
};

uint64_t stream_seed(uint64_t seed, int64_t prompt_index, int64_t sequence_index) {
  return splitmix64(splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(prompt_index)) ^
                    static_cast<uint64_t>(sequence_index));
}

at::Tensor long_tensor(const std::vector<int64_t>& values, const at::Device& device) {
  return at::tensor(values, at::kLong).to(device);
}

}  // namespace

void GenerationConfig::validate() const {
  auto fail = [](const std::string& message) { throw Error("generate", message); };
  if (max_new_tokens < 1)
    fail("max_new_tokens must be >= 1, got " + std::to_string(max_new_tokens));
  if (!(temperature >= 0) || !std::isfinite(temperature))
    fail("temperature must be >= 0 (0 = greedy), got " + std::to_string(temperature));
  if (top_k < 0) fail("top_k must be >= 0 (0 = off), got " + std::to_string(top_k));
  if (!(top_p > 0 && top_p <= 1)) fail("top_p must be in (0, 1], got " + std::to_string(top_p));
  if (num_return_sequences < 1)
    fail("num_return_sequences must be >= 1, got " + std::to_string(num_return_sequences));
  if (first_prompt_index < 0)
    fail("first_prompt_index must be >= 0, got " + std::to_string(first_prompt_index));
  if (eos_token_id && *eos_token_id < 0)
    fail("eos_token_id must be >= 0, got " + std::to_string(*eos_token_id));
  if (pad_token_id && *pad_token_id < 0)
    fail("pad_token_id must be >= 0, got " + std::to_string(*pad_token_id));
}

const char* finish_reason_name(FinishReason reason) {
  return reason == FinishReason::kEos ? "eos" : "length";
}

std::vector<GeneratedSequence> generate(CausalLMImpl& model,
                                        const std::vector<std::vector<int32_t>>& prompts,
                                        const GenerationConfig& config) {
  config.validate();
  const int64_t N = static_cast<int64_t>(prompts.size());
  const int64_t R = config.num_return_sequences;
  std::vector<GeneratedSequence> out(N * R);
  for (int64_t j = 0; j < N * R; ++j) {
    out[j].prompt_index = j / R;
    out[j].sequence_index = j % R;
  }
  if (N == 0) return out;

  const int64_t V = model.vocab_size();
  const int64_t max_prompt = model.max_positions() - config.max_new_tokens;
  int64_t L = 0;  // longest prompt
  for (int64_t i = 0; i < N; ++i) {
    const auto& p = prompts[i];
    const int64_t n = static_cast<int64_t>(p.size());
    const std::string name = "prompt " + std::to_string(i);
    if (n == 0) throw Error("generate", name + " is empty (generation needs at least one token)");
    if (n > max_prompt) {
      throw Error("generate",
                  name + ": " + std::to_string(n) + " tokens + max_new_tokens " +
                      std::to_string(config.max_new_tokens) + " exceed the model's max_positions " +
                      std::to_string(model.max_positions()) + " (at most " +
                      std::to_string(std::max<int64_t>(0, max_prompt)) + " prompt tokens)");
    }
    for (int32_t id : p)
      if (id < 0 || id >= V)
        throw Error("generate", name + ": token id " + std::to_string(id) +
                                    " outside the vocabulary [0, " + std::to_string(V) + ")");
    L = std::max(L, n);
  }

  const std::optional<int64_t> eos =
      config.eos_token_id ? config.eos_token_id : model.eos_token_id();
  int64_t pad = 0;
  if (config.pad_token_id) {
    pad = *config.pad_token_id;
    if (pad >= V)
      throw Error("generate", "pad_token_id " + std::to_string(pad) +
                                  " outside the vocabulary [0, " + std::to_string(V) + ")");
  } else if (auto model_pad = model.pad_token_id(); model_pad && *model_pad < V) {
    pad = *model_pad;
  } else if (eos && *eos < V) {
    pad = *eos;
  }

  at::NoGradGuard no_grad;
  EvalModeGuard eval_mode(model);
  const at::Device device = model.token_embedding_weight().device();

  // Left padding: prompt i occupies the last |prompt i| columns.
  std::vector<int64_t> ids(N * L, pad), mask_values(N * L, 0);
  for (int64_t i = 0; i < N; ++i) {
    const int64_t n = static_cast<int64_t>(prompts[i].size());
    for (int64_t t = 0; t < n; ++t) {
      ids[i * L + L - n + t] = prompts[i][t];
      mask_values[i * L + L - n + t] = 1;
    }
  }
  at::Tensor tokens = long_tensor(ids, device).view({N, L});        // [B, S] every token so far
  at::Tensor mask = long_tensor(mask_values, device).view({N, L});  // [B, S]

  std::optional<KvCache> cache;
  if (config.use_cache) cache.emplace(model.num_layers());
  // Logits [B, V] (float32) of the next token of every row. With the cache, the prefill feeds
  // the whole prompt and every later call only the newest column.
  auto next_logits = [&](bool prefill) {
    const at::Tensor positions = (mask.cumsum(1) - 1).clamp_min(0);
    const int64_t S = tokens.size(1);
    at::Tensor last;
    if (cache) {
      const int64_t T = prefill ? S : 1;
      const at::Tensor hidden = model.hidden_states(tokens.narrow(1, S - T, T), mask,
                                                    positions.narrow(1, S - T, T), &*cache);
      last = model.lm_logits(hidden.narrow(1, T - 1, 1));
    } else {
      last = model.forward(tokens, mask, positions).narrow(1, S - 1, 1);
    }
    return last.squeeze(1).to(at::kFloat);
  };

  at::Tensor logits = next_logits(/*prefill=*/true);  // [N, V]
  if (R > 1) {
    std::vector<int64_t> repeat(N * R);
    for (int64_t j = 0; j < N * R; ++j)
      repeat[j] = j / R;
    const at::Tensor index = long_tensor(repeat, device);
    logits = logits.index_select(0, index);
    tokens = tokens.index_select(0, index);
    mask = mask.index_select(0, index);
    if (cache) cache->select_rows(index);
  }

  const bool greedy = config.temperature == 0;
  const SamplingParams sampling{greedy ? 1.0 : config.temperature, config.top_k, config.top_p};
  std::vector<std::mt19937_64> engines;
  if (!greedy) {
    engines.reserve(N * R);
    for (int64_t j = 0; j < N * R; ++j)
      engines.emplace_back(stream_seed(config.seed, config.first_prompt_index + j / R, j % R));
  }

  // active[b]: the output sequence that batch row b generates. Finished rows leave the batch.
  std::vector<int64_t> active(N * R);
  for (int64_t j = 0; j < N * R; ++j)
    active[j] = j;
  while (true) {
    std::vector<int64_t> next;
    if (greedy) {
      const at::Tensor argmax = logits.argmax(1).to(at::kCPU).contiguous();
      next.assign(argmax.data_ptr<int64_t>(), argmax.data_ptr<int64_t>() + argmax.numel());
    } else {
      std::vector<std::mt19937_64*> row_engines;
      for (int64_t j : active)
        row_engines.push_back(&engines[j]);
      next = sample_rows(warp_logits(logits, sampling), row_engines);
    }

    std::vector<int64_t> keep;  // batch rows still generating
    for (size_t b = 0; b < active.size(); ++b) {
      GeneratedSequence& seq = out[active[b]];
      seq.ids.push_back(static_cast<int32_t>(next[b]));
      if (eos && next[b] == *eos) {
        seq.finish_reason = FinishReason::kEos;
      } else if (static_cast<int64_t>(seq.ids.size()) >= config.max_new_tokens) {
        seq.finish_reason = FinishReason::kLength;
      } else {
        keep.push_back(static_cast<int64_t>(b));
      }
    }
    if (keep.empty()) break;

    const int64_t B = static_cast<int64_t>(active.size());
    tokens = at::cat({tokens, long_tensor(next, device).view({B, 1})}, 1);
    mask = at::cat({mask, at::ones({B, 1}, mask.options())}, 1);
    if (static_cast<int64_t>(keep.size()) < B) {
      const at::Tensor index = long_tensor(keep, device);
      tokens = tokens.index_select(0, index);
      mask = mask.index_select(0, index);
      if (cache) cache->select_rows(index);
      std::vector<int64_t> still;
      for (int64_t b : keep)
        still.push_back(active[b]);
      active = std::move(still);
    }
    logits = next_logits(/*prefill=*/false);
  }
  return out;
}

}  // namespace tailor
