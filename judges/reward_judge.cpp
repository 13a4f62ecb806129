#include "judges/reward_judge.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <numeric>
#include <optional>

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "data/store/jsonl_lines.h"
#include "dist/communicator.h"
#include "judges/user_profile.h"
#include "models/core/lora.h"
#include "models/heads/reward_model.h"
#include "models/heads/vpl.h"
#include "models/io/multi_reward_export.h"
#include "models/io/pretrained.h"
#include "models/io/reward_export.h"
#include "models/io/vpl_export.h"
#include "models/tokenizer/prompt_format.h"
#include "models/tokenizer/tokenizer.h"
#include "train/features/context_embeddings.h"
#include "train/recipe/schema.h"

namespace tailor::judges {
namespace fs = std::filesystem;
namespace {

const char* kKinds[] = {"bt", "vpl", "profile"};

std::string relative_hint() {
  return " (relative paths are relative to the working directory " + fs::current_path().string() +
         ")";
}

bool has_lora_adapter(const fs::path& vpl_export) {
  return fs::is_regular_file(vpl_export / "backbone" / "adapter" / "adapter_config.json");
}

// A loaded reward export, shared by the judges that name it.
std::atomic<int64_t> live_exports{0};

struct LoadedExport {
  LoadedExport() { ++live_exports; }
  ~LoadedExport() { --live_exports; }
  LoadedExport(const LoadedExport&) = delete;
  LoadedExport& operator=(const LoadedExport&) = delete;

  RewardExportKind kind = RewardExportKind::kBradleyTerry;
  fs::path dir;
  std::optional<Tokenizer> tokenizer;
  RewardModel bt{nullptr};  // Bradley–Terry
  CausalLM backbone;        // VPL: the trained backbone (with its LoRA adapter, if any)
  VplHeads heads{nullptr};  // VPL
  std::optional<MultiRewardExport> multi;  // profile: the elicit run's multi-reward export
  int64_t max_positions = 0;
};

// prompt ++ completion as the reward stage joins them (plain template, no EOS), keeping the last
// `max_length` tokens.
std::vector<int32_t> reward_sequence(const Tokenizer& tokenizer, const std::string& prompt,
                                     const std::string& completion, int64_t max_length) {
  std::vector<int32_t> ids = encode_sft_field(tokenizer, PromptTemplate::kPlain, "prompt", prompt);
  const auto response = encode_sft_field(tokenizer, PromptTemplate::kPlain, "response", completion);
  ids.insert(ids.end(), response.begin(), response.end());
  if (static_cast<int64_t>(ids.size()) > max_length) ids.erase(ids.begin(), ids.end() - max_length);
  if (ids.empty())
    throw Error("reward_judge", "prompt \"" + prompt.substr(0, 40) + "\" and its completion " +
                                    "tokenize to nothing");
  return ids;
}

// Right-padded ids and mask [N, T] of the given sequences.
std::pair<at::Tensor, at::Tensor> pad_right(const std::vector<const std::vector<int32_t>*>& rows) {
  int64_t T = 1;
  for (const auto* r : rows)
    T = std::max<int64_t>(T, static_cast<int64_t>(r->size()));
  at::Tensor ids = at::zeros({static_cast<int64_t>(rows.size()), T}, at::kLong);
  at::Tensor mask = at::zeros_like(ids);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto mask_a = mask.accessor<int64_t, 2>();
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t t = 0; t < rows[i]->size(); ++t) {
      ids_a[static_cast<int64_t>(i)][static_cast<int64_t>(t)] = (*rows[i])[t];
      mask_a[static_cast<int64_t>(i)][static_cast<int64_t>(t)] = 1;
    }
  return {ids, mask};
}

struct ContextAnswer {
  std::string prompt, chosen, rejected;
};

std::vector<ContextAnswer> read_context(const fs::path& file, const std::string& key) {
  if (!fs::exists(file)) throw Error("recipe", key + ".context: cannot open " + file.string());
  data::JsonlReader reader(file);
  std::vector<ContextAnswer> out;
  for (std::string line; reader.next(line);) {
    const nlohmann::json j = reader.parse_object(line);
    for (const char* field : {"prompt", "chosen", "rejected"})
      if (!j.contains(field) || !j[field].is_string())
        reader.fail(field,
                    "expected a string ({\"prompt\", \"chosen\", \"rejected\"}: a user's "
                    "answer to a context question)");
    out.push_back({j["prompt"].get<std::string>(), j["chosen"].get<std::string>(),
                   j["rejected"].get<std::string>()});
  }
  if (out.empty()) throw Error("recipe", key + ".context: " + file.string() + " holds no answers");
  return out;
}

std::shared_ptr<LoadedExport> load_export(const fs::path& dir, RewardExportKind kind,
                                          const std::string& key) {
  auto out = std::make_shared<LoadedExport>();
  out->kind = kind;
  out->dir = dir;
  if (kind == RewardExportKind::kBradleyTerry) {
    out->bt = load_reward_model(dir, {}, saved_dtype(dir));  // as `tailor score --model DIR`
    out->bt->eval();
    if (out->bt->num_labels() != 1)
      throw Error("recipe",
                  key + ".model: " + dir.string() + " has " +
                      std::to_string(out->bt->num_labels()) +
                      " outputs; a judge needs a one-output (Bradley-Terry) reward model");
    out->tokenizer = Tokenizer::from_dir(dir);
    out->max_positions = out->bt->backbone->max_positions();
  } else if (kind == RewardExportKind::kProfile) {
    out->multi = load_multi_reward_export(dir);
    out->tokenizer = Tokenizer::from_dir(dir / "backbone");
    out->max_positions = out->multi->backbone->max_positions();
  } else {
    auto [backbone, heads] = load_vpl_export(dir);
    out->backbone = backbone;
    out->heads = heads;
    out->backbone->eval();
    out->heads->eval();
    out->tokenizer = Tokenizer::from_dir(dir / "backbone");
    out->max_positions = out->backbone->max_positions();
  }
  return out;
}

}  // namespace

struct RewardJudge::Impl {
  std::shared_ptr<LoadedExport> model;
  RewardJudgeOptions options;
  at::Tensor z;                        // VPL: [1, L], the posterior mean of the user's context
  std::optional<UserProfile> profile;  // profile judges
  fs::path profile_file;
  std::string description;
};

RewardJudge::RewardJudge(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RewardJudge::~RewardJudge() = default;

std::string RewardJudge::description() const {
  return impl_->description;
}

std::vector<double> RewardJudge::latent() const {
  if (!impl_->z.defined()) return {};
  const at::Tensor z = impl_->z.to(at::kDouble).contiguous().view(-1);
  return std::vector<double>(z.data_ptr<double>(), z.data_ptr<double>() + z.numel());
}

std::vector<double> RewardJudge::rewards(
    const std::vector<std::pair<std::string, std::string>>& items) {
  LoadedExport& m = *impl_->model;
  if (m.kind == RewardExportKind::kProfile) {
    // Every rank scores every text: profile_rewards batches the backbone itself, and the
    // numbers are the same on every rank of one machine.
    std::vector<std::string> prompts, completions;
    for (const auto& [prompt, completion] : items) {
      prompts.push_back(prompt);
      completions.push_back(completion);
    }
    return profile_rewards(*m.multi, *m.tokenizer, *impl_->profile, impl_->profile_file, prompts,
                           completions);
  }
  // The distinct texts, in order of first appearance.
  std::map<std::pair<std::string, std::string>, size_t> index;
  std::vector<size_t> slot(items.size());
  std::vector<std::vector<int32_t>> sequences;
  for (size_t i = 0; i < items.size(); ++i) {
    const auto [it, fresh] = index.emplace(items[i], sequences.size());
    if (fresh)
      sequences.push_back(
          reward_sequence(*m.tokenizer, items[i].first, items[i].second, m.max_positions));
    slot[i] = it->second;
  }
  // Batches of similar lengths, fixed by the texts alone; batch b runs on rank b % world.
  std::vector<size_t> by_length(sequences.size());
  std::iota(by_length.begin(), by_length.end(), 0);
  std::stable_sort(by_length.begin(), by_length.end(),
                   [&](size_t a, size_t b) { return sequences[a].size() < sequences[b].size(); });
  const int rank = impl_->options.comm ? impl_->options.comm->rank() : 0;
  const int world = impl_->options.comm ? impl_->options.comm->world_size() : 1;
  const size_t B = static_cast<size_t>(std::max<int64_t>(1, impl_->options.batch_size));
  std::vector<double> reward(sequences.size(), 0.0);
  nlohmann::json mine = nlohmann::json::array();  // [[sequence, reward], ...]
  torch::NoGradGuard no_grad;
  for (size_t start = 0, batch = 0; start < by_length.size(); start += B, ++batch) {
    if (static_cast<int>(batch % static_cast<size_t>(world)) != rank) continue;
    const std::vector<size_t> rows(by_length.begin() + start,
                                   by_length.begin() + std::min(by_length.size(), start + B));
    std::vector<const std::vector<int32_t>*> seqs;
    for (size_t r : rows)
      seqs.push_back(&sequences[r]);
    const auto [ids, mask] = pad_right(seqs);
    at::Tensor scores;
    if (m.kind == RewardExportKind::kBradleyTerry) {
      scores = m.bt->forward(ids, mask).select(1, 0);
    } else {
      const at::Tensor e = last_token_features(m.backbone->hidden_states(ids, mask), mask);
      scores = m.heads->decode(e, impl_->z.expand({e.size(0), impl_->z.size(1)}));
    }
    scores = scores.to(at::kFloat).to(at::kDouble).contiguous();
    for (size_t k = 0; k < rows.size(); ++k) {
      reward[rows[k]] = scores.data_ptr<double>()[k];
      if (world > 1) mine.push_back({rows[k], reward[rows[k]]});
    }
  }
  if (world > 1) {
    // nlohmann writes doubles with 17 significant digits: they read back exactly.
    for (const auto& part : impl_->options.comm->all_gather_strings(mine.dump()))
      for (const auto& e : nlohmann::json::parse(part))
        reward[e[0].get<size_t>()] = e[1].get<double>();
  }
  std::vector<double> out(items.size());
  for (size_t i = 0; i < items.size(); ++i)
    out[i] = reward[slot[i]];
  return out;
}

int reward_prefers(double a, double b) {
  const double tolerance = kRewardTieTolerance * std::max({1.0, std::abs(a), std::abs(b)});
  if (std::abs(a - b) <= tolerance) return 0;
  return a > b ? 1 : -1;
}

std::vector<int> RewardJudge::compare(const std::vector<Matchup>& matchups) {
  std::vector<std::pair<std::string, std::string>> items;
  items.reserve(2 * matchups.size());
  for (const auto& m : matchups) {
    items.emplace_back(m.prompt, m.a);
    items.emplace_back(m.prompt, m.b);
  }
  const std::vector<double> r = rewards(items);
  std::vector<int> out(matchups.size());
  for (size_t i = 0; i < matchups.size(); ++i)
    out[i] = reward_prefers(r[2 * i], r[2 * i + 1]);
  return out;
}

std::vector<Ranking> RewardJudge::rank(const std::vector<Candidates>& groups) {
  std::vector<std::pair<std::string, std::string>> items;
  for (const auto& g : groups)
    for (const auto& c : g.completions)
      items.emplace_back(g.prompt, c);
  const std::vector<double> all = rewards(items);
  std::vector<Ranking> out;
  size_t next = 0;
  for (const auto& g : groups) {
    const size_t K = g.completions.size();
    const std::vector<double> r(all.begin() + static_cast<std::ptrdiff_t>(next),
                                all.begin() + static_cast<std::ptrdiff_t>(next + K));
    next += K;
    Ranking ranking;
    ranking.order.resize(K);
    std::iota(ranking.order.begin(), ranking.order.end(), 0);
    std::stable_sort(ranking.order.begin(), ranking.order.end(),
                     [&](size_t a, size_t b) { return r[a] > r[b]; });
    ranking.prefers.assign(K, std::vector<int>(K, 0));
    for (size_t i = 0; i < K; ++i)
      for (size_t j = 0; j < K; ++j)
        ranking.prefers[i][j] = reward_prefers(r[i], r[j]);
    out.push_back(std::move(ranking));
  }
  return out;
}

const std::vector<std::string>& reward_judge_fields() {
  static const std::vector<std::string> fields = {"model", "context", "context_encoder", "profile"};
  return fields;
}

RewardJudgeSpec reward_judge_spec(const std::map<std::string, std::string>& fields,
                                  const std::string& key, const std::string& where) {
  const std::string at = (where.empty() ? "" : where + ": ") + key;
  const auto& known = reward_judge_fields();
  RewardJudgeSpec spec;
  for (const auto& [field, value] : fields) {
    if (std::find(known.begin(), known.end(), field) == known.end()) {
      const std::string close = closest_match(field, known);
      throw Error("recipe", at + "." + field + ": unknown field" +
                                (close.empty() ? "" : "; did you mean '" + close + "'?") +
                                " (fields: model, context, context_encoder, profile)");
    }
    if (value.empty()) throw Error("recipe", at + "." + field + ": expected a non-empty path");
    (field == "model"     ? spec.model
     : field == "context" ? spec.context
     : field == "profile" ? spec.profile
                          : spec.context_encoder) = value;
  }
  if (spec.model.empty() && spec.profile.empty())
    throw Error("recipe", at + ".model: missing: the directory of a tailor reward export (the "
                               "reward stage's output_dir/export), e.g. {model: runs/rm/export}, "
                               "or a user's elicit profile, {profile: "
                               "runs/elicit/users/alice/info_gain/profile.json}");
  return spec;
}

fs::path reward_judge_model(const RewardJudgeSpec& spec, const std::string& key) {
  if (!spec.model.empty() || spec.profile.empty()) return spec.model;
  if (!fs::is_regular_file(spec.profile))
    throw Error("recipe",
                key + ".profile: file not found: " + spec.profile.string() + relative_hint());
  try {
    return read_profile(spec.profile).reward_model;
  } catch (const Error& e) {
    throw Error("recipe", key + ".profile: " + e.what());
  }
}

namespace {

RewardExportKind check_profile_inputs(const RewardJudgeSpec& spec, const std::string& key) {
  for (const auto& [field, path] :
       {std::pair<const char*, const fs::path*>{"context", &spec.context},
        {"context_encoder", &spec.context_encoder}})
    if (!path->empty())
      throw Error("recipe", key + "." + field +
                                ": a profile is the user's whole preference; a context applies "
                                "to VPL exports only");
  const fs::path dir = reward_judge_model(spec, key);
  const std::string field = spec.model.empty() ? "profile" : "model";
  if (!is_multi_reward_dir(dir))
    throw Error("recipe", key + "." + field + ": " + dir.string() +
                              " is not an elicit run's multi-reward export (OUTPUT_DIR/export, "
                              "with multi_reward_config.json)" +
                              (spec.model.empty() ? " (the profile's reward_model)" : "") +
                              relative_hint());
  return RewardExportKind::kProfile;
}

}  // namespace

RewardExportKind check_reward_judge_inputs(const RewardJudgeSpec& spec, const std::string& key) {
  if (!spec.profile.empty()) return check_profile_inputs(spec, key);
  const fs::path& dir = spec.model;
  if (!fs::is_directory(dir))
    throw Error("recipe", key + ".model: directory not found: " + dir.string() + relative_hint());
  RewardExportKind kind;
  if (is_reward_model_dir(dir)) {
    kind = RewardExportKind::kBradleyTerry;
  } else if (fs::is_regular_file(dir / "vpl_config.json")) {
    kind = RewardExportKind::kVpl;
  } else {
    throw Error("recipe", key + ".model: " + dir.string() +
                              " is not a tailor reward export: expected config.json naming a "
                              "*ForSequenceClassification architecture (reward.kind bt) or "
                              "vpl_config.json (reward.kind vae)");
  }
  if (kind == RewardExportKind::kBradleyTerry) {
    for (const auto& [field, path] :
         {std::pair<const char*, const fs::path*>{"context", &spec.context},
          {"context_encoder", &spec.context_encoder}})
      if (!path->empty())
        throw Error("recipe", key + "." + field + ": " + dir.string() +
                                  " is a Bradley-Terry reward model (one reward for everyone); "
                                  "a context applies to VPL exports only");
    return kind;
  }
  if (spec.context.empty())
    throw Error("recipe", key + ".context: missing: " + dir.string() +
                              " is a VPL export, whose reward depends on the user; set context to "
                              "a JSONL of the user's answers {\"prompt\", \"chosen\", "
                              "\"rejected\"}");
  if (!fs::is_regular_file(spec.context))
    throw Error("recipe",
                key + ".context: file not found: " + spec.context.string() + relative_hint());
  if (!spec.context_encoder.empty()) {
    if (!fs::is_regular_file(spec.context_encoder / "config.json"))
      throw Error("recipe", key + ".context_encoder: " + spec.context_encoder.string() +
                                " is not a model directory (no config.json)" + relative_hint());
  } else if (!has_lora_adapter(dir)) {
    throw Error("recipe", key + ".context_encoder: missing: the VPL export " + dir.string() +
                              " has no LoRA adapter (its backbone was trained in full or merged), "
                              "so it does not hold VPL's context encoder, the reward run's frozen "
                              "initial backbone; set context_encoder to the model that run "
                              "started from (its model.path)");
  }
  return kind;
}

int64_t live_reward_models() {
  return live_exports.load();
}

std::vector<std::unique_ptr<RewardJudge>> make_reward_judges(
    const std::vector<RewardJudgeSpec>& specs, const std::vector<std::string>& keys,
    const RewardJudgeOptions& options) {
  if (keys.size() != specs.size())
    throw Error("reward_judge", "make_reward_judges: one key per spec");
  std::map<std::string, std::shared_ptr<LoadedExport>> loaded;  // by canonical directory
  std::vector<std::unique_ptr<RewardJudge>> out;
  for (size_t i = 0; i < specs.size(); ++i) {
    const RewardJudgeSpec& spec = specs[i];
    const RewardExportKind kind = check_reward_judge_inputs(spec, keys[i]);
    const fs::path dir = reward_judge_model(spec, keys[i]);
    auto& model = loaded[fs::weakly_canonical(dir).string()];
    if (!model) model = load_export(dir, kind, keys[i]);
    if (model->kind != kind)
      throw Error("recipe", keys[i] + ": " + dir.string() + " is loaded as a " +
                                kKinds[static_cast<int>(model->kind)] + " export by another user");
    auto impl = std::make_unique<RewardJudge::Impl>();
    impl->model = model;
    impl->options = options;
    impl->description =
        "reward model " + dir.string() + " (" + kKinds[static_cast<int>(kind)] + ")";
    if (kind == RewardExportKind::kProfile) {
      impl->profile = read_profile(spec.profile);
      impl->profile_file = spec.profile;
      if (impl->profile->reward_model_id != model->multi->id)
        throw Error("recipe", keys[i] + ".profile: " + spec.profile.string() +
                                  " was made with reward model " + impl->profile->reward_model_id +
                                  ", not with " + dir.string() + " (id " + model->multi->id + ")");
      impl->description = "profile " + spec.profile.string() + " (" + impl->profile->method + ", " +
                          std::to_string(impl->profile->answers) + " answers) under " +
                          dir.string();
    }
    if (kind == RewardExportKind::kVpl) {
      // q(z | context): the user's answers embedded by the context encoder, as the reward stage
      // embeds its survey answers (chosen then rejected of each answer), encoded by the heads.
      const auto answers = read_context(spec.context, keys[i]);
      std::vector<std::vector<int32_t>> sequences;
      for (const auto& a : answers) {
        sequences.push_back(
            reward_sequence(*model->tokenizer, a.prompt, a.chosen, model->max_positions));
        sequences.push_back(
            reward_sequence(*model->tokenizer, a.prompt, a.rejected, model->max_positions));
      }
      std::vector<int64_t> all(sequences.size());
      std::iota(all.begin(), all.end(), 0);
      at::Tensor embedded;
      if (!spec.context_encoder.empty()) {
        CausalLM encoder = load_pretrained(spec.context_encoder);
        embedded = embed_sequences(*encoder, sequences, all);
      } else {
        // The LoRA base with its adapter off is the reward run's initial backbone: the
        // adapter was applied after the context embeddings were taken, and the base stayed
        // frozen.
        set_adapters_enabled(*model->backbone, false);
        embedded = embed_sequences(*model->backbone, sequences, all);
        set_adapters_enabled(*model->backbone, true);
      }
      const int64_t E = model->heads->config().embed_dim;
      if (embedded.size(1) != E)
        throw Error("recipe", keys[i] + ".context_encoder: its hidden size " +
                                  std::to_string(embedded.size(1)) +
                                  " differs from the VPL heads' embed_dim " + std::to_string(E));
      torch::NoGradGuard no_grad;
      const int64_t C = static_cast<int64_t>(answers.size());
      impl->z = model->heads->encode(embedded.view({1, C, 2, E})).first;  // [1, L]: z = mean
      impl->description +=
          ", context " + spec.context.string() + " (" + std::to_string(C) + " answers" +
          (spec.context_encoder.empty() ? "" : ", encoder " + spec.context_encoder.string()) + ")";
    }
    out.push_back(std::make_unique<RewardJudge>(std::move(impl)));
  }
  return out;
}

}  // namespace tailor::judges
