#include "train/per_user/dpo_step.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>
#include <optional>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include "common/error.h"
#include "dist/communicator.h"
#include "models/core/lora.h"
#include "train/zero/zero.h"

namespace tailor {

namespace {

// The positions DPO scores: (row r, position t) with labels[r, t + 1] != -100, i.e. the hidden
// state at t predicts a response token (or the closing EOS). Prompt and padding positions never
// reach the vocabulary projection.
struct ScoredPositions {
  at::Tensor row;     // [M] int64: the batch row of each position
  at::Tensor flat;    // [M] int64: r * T + t, an index into hidden.reshape({R * T, C})
  at::Tensor target;  // [M] int64: the token whose log-probability is taken
};

ScoredPositions scored_positions(const at::Tensor& labels) {
  const int64_t T = labels.size(1);
  const at::Tensor next = labels.slice(1, 1);  // [R, T-1]
  const at::Tensor where = next.ne(-100).nonzero();
  ScoredPositions p;
  p.row = where.select(1, 0).contiguous();
  const at::Tensor t = where.select(1, 1);
  p.flat = p.row * T + t;
  p.target = next.reshape({-1}).index_select(0, p.row * (T - 1) + t);
  return p;
}

// The number of scored positions of each row (the response tokens, EOS included, whose
// log-probs a row's sum covers): labels [R, T] -> [R] int64.
at::Tensor scored_token_counts(const at::Tensor& labels) {
  return labels.slice(1, 1).ne(-100).sum(1);
}

// The vocabulary projection holds V floats per position (GPT-2: 200 KB), so it runs on this many
// positions at a time: the chunk's logits stay in cache instead of a [R, T, V] tensor going
// through memory several times. ~16 MiB of float32 logits per chunk.
int64_t positions_per_chunk(int64_t vocab) {
  return std::max<int64_t>(1, (int64_t{1} << 22) / std::max<int64_t>(vocab, 1));
}

// log p(target | hidden) of positions [start, start + m): the chunk goes through lm_logits as m
// rows of length 1, each routed to its own row's adapter when the output layer has one (Mistral
// with lm_head among the LoRA targets).
at::Tensor chunk_log_probs(CausalLMImpl& model, AdapterBank& bank, const at::Tensor& hidden,
                           const ScoredPositions& p, const at::Tensor* row_adapters, int64_t start,
                           int64_t m) {
  std::optional<AdapterRoute> route;
  if (row_adapters) route.emplace(bank, row_adapters->index_select(0, p.row.narrow(0, start, m)));
  const at::Tensor logits = model.lm_logits(hidden.unsqueeze(1)).squeeze(1);  // [m, V]
  const at::Tensor compute = logits.scalar_type() == at::kDouble ? logits : logits.to(at::kFloat);
  const at::Tensor target = p.target.narrow(0, start, m).unsqueeze(1);
  return at::log_softmax(compute, -1).gather(1, target).squeeze(1);  // [m]
}

// Per row, the summed log-probability of its scored positions: [R]. No graph is kept.
at::Tensor summed_log_probs(CausalLMImpl& model, AdapterBank& bank, const at::Tensor& selected,
                            const ScoredPositions& p, const at::Tensor* row_adapters,
                            int64_t rows) {
  torch::NoGradGuard no_grad;
  const int64_t M = selected.size(0), chunk = positions_per_chunk(model.vocab_size());
  at::Tensor sums = at::zeros(
      {rows},
      selected.options().dtype(selected.scalar_type() == at::kDouble ? at::kDouble : at::kFloat));
  for (int64_t s = 0; s < M; s += chunk) {
    const int64_t m = std::min(chunk, M - s);
    sums.index_add_(0, p.row.narrow(0, s, m),
                    chunk_log_probs(model, bank, selected.narrow(0, s, m), p, row_adapters, s, m));
  }
  return sums;
}

// The gradient of sum_r g[r] * (row r's summed log-probability) with respect to `selected`,
// chunk by chunk, recomputing each chunk's logits (one extra vocabulary projection instead of
// keeping every chunk's softmax for backward). Trainable parameters of the output layer, if any,
// get their gradients on the way.
at::Tensor log_prob_gradient(CausalLMImpl& model, AdapterBank& bank, const at::Tensor& selected,
                             const ScoredPositions& p, const at::Tensor* row_adapters,
                             const at::Tensor& g) {
  const int64_t M = selected.size(0), chunk = positions_per_chunk(model.vocab_size());
  at::Tensor grad = at::empty_like(selected);
  for (int64_t s = 0; s < M; s += chunk) {
    const int64_t m = std::min(chunk, M - s);
    const at::Tensor h = selected.narrow(0, s, m).detach().requires_grad_(true);
    const at::Tensor lp = chunk_log_probs(model, bank, h, p, row_adapters, s, m);
    (lp * g.index_select(0, p.row.narrow(0, s, m)).to(lp.scalar_type())).sum().backward();
    grad.narrow(0, s, m).copy_(h.grad());
  }
  return grad;
}

// LoRA dropout on the output layer (lm_head among the targets, in training mode) draws its masks
// from the default generator of the hidden states' device: once when summed_log_probs takes the
// log-probs, again when log_prob_gradient recomputes them. The recomputation runs from the state
// the first pass started in, so it draws the same masks in the same order (same chunks, same
// shapes) and the gradient is that of the loss computed; then the state after the first pass
// comes back, as if the recomputation had drawn nothing.
at::Tensor dropout_generator_state(at::Generator& generator) {
  const std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void set_dropout_generator_state(at::Generator& generator, const at::Tensor& state) {
  const std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

// The adapter of each row: rows b and B + b (pair b's chosen and rejected) are pair b's user's.
std::vector<std::string> pair_row_users(const data::PairBatch& batch) {
  std::vector<std::string> row_users(batch.users);
  row_users.insert(row_users.end(), batch.users.begin(), batch.users.end());
  return row_users;
}

// The last hidden states at the scored positions: [M, C].
at::Tensor scored_hidden(CausalLMImpl& model, const at::Tensor& ids, const at::Tensor& mask,
                         const ScoredPositions& p) {
  const at::Tensor hidden = model.hidden_states(ids, mask);
  return hidden.reshape({-1, hidden.size(-1)}).index_select(0, p.flat);
}

// Every row's summed response log-prob, without a graph: through the base alone, or (adapters)
// each pair's rows through its user's adapter.
at::Tensor batch_log_probs(CausalLMImpl& model, AdapterBank& bank, const data::PairBatch& batch,
                           const at::Device& device, bool adapters) {
  torch::NoGradGuard no_grad;
  const at::Tensor ids = batch.rows.input_ids.to(device);
  const at::Tensor mask = batch.rows.attention_mask.to(device);
  const ScoredPositions p = scored_positions(batch.rows.labels.to(device));
  // Every row through the base (also inside a caller's route), or through its pair's user.
  const auto route = adapters ? std::make_unique<AdapterRoute>(bank, pair_row_users(batch), device)
                              : std::make_unique<AdapterRoute>(bank, std::string());
  const at::Tensor row_adapters = route->rows();
  return summed_log_probs(model, bank, scored_hidden(model, ids, mask, p), p,
                          adapters ? &row_adapters : nullptr, ids.size(0));
}

}  // namespace

at::Tensor reference_log_probs(CausalLMImpl& model, AdapterBank& bank, const data::PairBatch& batch,
                               const at::Device& device) {
  return batch_log_probs(model, bank, batch, device, /*adapters=*/false);
}

at::Tensor policy_log_probs(CausalLMImpl& model, AdapterBank& bank, const data::PairBatch& batch,
                            const at::Device& device) {
  return batch_log_probs(model, bank, batch, device, /*adapters=*/true);
}

at::Tensor response_token_counts(const data::PairBatch& batch) {
  return scored_token_counts(batch.rows.labels);
}

std::map<std::string, DpoUserStats> dpo_forward_backward(
    CausalLMImpl& model, AdapterBank& bank, const data::PairBatch& batch,
    const DpoStepConfig& config, const at::Device& device,
    const std::map<std::string, double>* pair_weights, const at::Tensor* precomputed_reference) {
  const int64_t B = batch.pairs(), R = 2 * B;
  const at::Tensor ids = batch.rows.input_ids.to(device);
  const at::Tensor mask = batch.rows.attention_mask.to(device);
  const at::Tensor labels = batch.rows.labels.to(device);
  const ScoredPositions p = scored_positions(labels);
  const at::Tensor counts = scored_token_counts(labels);  // [R]
  // Reference: the base alone, no graph; or the caller's (the same numbers, computed once).
  at::Tensor reference;
  if (precomputed_reference) {
    if (precomputed_reference->dim() != 1 || precomputed_reference->size(0) != R)
      throw Error("dpo",
                  "a precomputed reference needs one log-prob per row (" + std::to_string(R) + ")");
    reference = precomputed_reference->to(device);
  } else {
    reference = reference_log_probs(model, bank, batch, device);
  }
  // Policy: row b and row B + b through the adapter of pair b's user. The blocks run with the
  // graph; the vocabulary projection runs in chunks without it (summed_log_probs), and its
  // gradient is taken chunk by chunk once the loss has given d loss / d log-prob of every row.
  const AdapterRoute route(bank, pair_row_users(batch), device);
  const at::Tensor row_adapters = route.rows();
  const at::Tensor selected = scored_hidden(model, ids, mask, p);
  at::Generator generator = at::globalContext().defaultGenerator(selected.device());
  const at::Tensor draws_before = dropout_generator_state(generator);
  const at::Tensor policy =
      summed_log_probs(model, bank, selected.detach(), p, &row_adapters, R).requires_grad_(true);
  const at::Tensor draws_after = dropout_generator_state(generator);

  // Summed log-probs in, the division by the lengths (ipo) inside dpo_losses: a precomputed
  // reference is summed too.
  const DpoLosses d = dpo_losses(policy.narrow(0, 0, B), policy.narrow(0, B, B),
                                 reference.narrow(0, 0, B), reference.narrow(0, B, B), config.loss,
                                 counts.narrow(0, 0, B), counts.narrow(0, B, B));
  at::Tensor per_pair = d.losses;  // [B] float64
  if (config.sft_weight > 0) {
    // Mean NLL per token of the chosen response, per pair; averaged per user below.
    const at::Tensor tokens = counts.narrow(0, 0, B).clamp_min(1).to(at::kDouble);
    per_pair = per_pair + config.sft_weight * (-policy.narrow(0, 0, B).to(at::kDouble) / tokens);
  }
  // Each user's mean, summed over users: weight 1 / (the user's pairs in this batch).
  std::map<std::string, int64_t> pairs_of;
  for (const auto& user : batch.users)
    ++pairs_of[user];
  std::vector<double> weights;
  for (const auto& user : batch.users) {
    if (!pair_weights) {
      weights.push_back(1.0 / static_cast<double>(pairs_of[user]));
      continue;
    }
    const auto it = pair_weights->find(user);
    if (it == pair_weights->end())
      throw Error("dpo", "no loss weight given for user '" + user + "' of the batch");
    weights.push_back(it->second);
  }
  const at::Tensor w = at::tensor(weights, at::kDouble).to(per_pair.device());
  (per_pair * w).sum().backward();  // d loss / d policy log-probs, into policy.grad()
  set_dropout_generator_state(generator, draws_before);  // the forward's dropout masks again
  const at::Tensor selected_grad =
      log_prob_gradient(model, bank, selected, p, &row_adapters, policy.grad());
  set_dropout_generator_state(generator, draws_after);
  selected.backward(selected_grad);

  // Statistics, on the host.
  const at::Tensor loss = per_pair.detach().cpu();
  const at::Tensor rc = d.chosen_rewards.cpu(), rr = d.rejected_rewards.cpu();
  const at::Tensor pc = d.policy_chosen.cpu(), pr = d.policy_rejected.cpu();
  std::map<std::string, DpoUserStats> stats;
  for (int64_t b = 0; b < B; ++b) {
    DpoUserStats& s = stats[batch.users[static_cast<size_t>(b)]];
    const double n = static_cast<double>(pairs_of[batch.users[static_cast<size_t>(b)]]);
    const double chosen = rc[b].item<double>(), rejected = rr[b].item<double>();
    s.pairs += 1;
    s.loss += loss[b].item<double>() / n;
    s.rewards_chosen += chosen / n;
    s.rewards_rejected += rejected / n;
    s.accuracy += (chosen > rejected ? 1.0 : 0.0) / n;
    s.margin += (chosen - rejected) / n;
    s.logps_chosen += pc[b].item<double>() / n;
    s.logps_rejected += pr[b].item<double>() / n;
  }
  return stats;
}

std::vector<double> clip_bank_gradients_per_user(const AdapterBank& bank, torch::nn::Module& model,
                                                 double max_norm) {
  std::vector<at::Tensor> grads;
  for (const auto& item : model.named_parameters())
    if (is_adapter_bank_parameter(item.key()) && item.value().grad().defined())
      grads.push_back(item.value().grad());
  std::vector<double> norms;
  torch::NoGradGuard no_grad;
  for (int64_t u = 0; u < bank.size(); ++u) {
    double sum_sq = 0;
    for (const auto& g : grads) {
      const at::Tensor slice = g[u].to(at::kDouble);
      sum_sq += at::dot(slice.reshape({-1}), slice.reshape({-1})).item<double>();
    }
    const double norm = std::sqrt(sum_sq);
    norms.push_back(norm);
    if (max_norm <= 0 || !std::isfinite(norm)) continue;
    const double coef = max_norm / (norm + 1e-6);  // as clip_grad_norm_
    if (coef < 1.0)
      for (const auto& g : grads)
        g[u].mul_(coef);
  }
  return norms;
}

std::vector<double> clip_bank_gradients_per_user(const AdapterBank& bank, dist::ZeroEngine& engine,
                                                 dist::Communicator& comm, double max_norm) {
  const int64_t U = bank.size();
  // Calls fn(u, piece) for each user's elements of a bank parameter's owned gradient part: a
  // bank parameter is [U, ...] with user u's slice the elements [u n, (u + 1) n) of its
  // flattening, n = numel / U.
  const auto for_each_user = [U](const dist::GradientPart& part, const auto& fn) {
    if (!is_adapter_bank_parameter(part.name)) return;
    if (part.shape.empty() || part.shape[0] != U)
      throw Error("dpo", "internal: bank parameter " + part.name + " does not lead with the " +
                             std::to_string(U) + " users");
    int64_t numel = 1;
    for (int64_t d : part.shape)
      numel *= d;
    const int64_t n = numel / U, end = part.begin + part.grad.numel();
    for (int64_t u = part.begin / n; u < U && u * n < end; ++u) {
      const int64_t b = std::max(part.begin, u * n), e = std::min(end, (u + 1) * n);
      if (e > b) fn(u, part.grad.narrow(0, b - part.begin, e - b));
    }
  };
  torch::NoGradGuard no_grad;
  at::Tensor sum_sq = at::zeros({U}, at::kDouble);
  double* s = sum_sq.data_ptr<double>();
  engine.for_each_owned_gradient([&](const dist::GradientPart& part) {
    for_each_user(part, [&](int64_t u, const at::Tensor& g) {
      const at::Tensor d = g.to(at::kDouble);
      s[u] += at::dot(d, d).item<double>();
    });
  });
  if (engine.stage() > 0 && comm.world_size() > 1) {
    at::Tensor on_comm = sum_sq.to(comm.device());
    comm.all_reduce_sum(on_comm);
    sum_sq = on_comm.cpu();
    s = sum_sq.data_ptr<double>();
  }
  std::vector<double> norms, coefs(static_cast<size_t>(U), 1.0);
  bool clips = false;
  for (int64_t u = 0; u < U; ++u) {
    const double norm = std::sqrt(s[u]);
    norms.push_back(norm);
    if (max_norm <= 0 || !std::isfinite(norm)) continue;
    const double coef = max_norm / (norm + 1e-6);  // as clip_grad_norm_
    if (coef < 1.0) {
      coefs[static_cast<size_t>(u)] = coef;
      clips = true;
    }
  }
  if (clips)
    engine.for_each_owned_gradient([&](const dist::GradientPart& part) {
      for_each_user(part, [&](int64_t u, const at::Tensor& g) {
        if (coefs[static_cast<size_t>(u)] < 1.0) g.mul_(coefs[static_cast<size_t>(u)]);
      });
    });
  return norms;
}

}  // namespace tailor
