#include "stages/elicit/elicit_session.h"

#include <random>
#include <sstream>

#include <c10/core/GradMode.h>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/fnv1a.h"
#include "models/heads/multi_reward.h"
#include "models/io/multi_reward_export.h"
#include "models/io/safetensors.h"
#include "train/features/response_features.h"

namespace tailor {
namespace fs = std::filesystem;

Embeddings embed_candidates(MultiRewardImpl& model, const at::Tensor& features) {
  c10::NoGradGuard no_grad;
  model.eval();
  const at::Tensor hidden = model.hidden(features).to(at::kDouble).contiguous();
  Embeddings h;
  h.dim = hidden.size(1);
  h.values.assign(hidden.data_ptr<double>(), hidden.data_ptr<double>() + hidden.numel());
  return h;
}

double pair_accuracy(const Embeddings& h, const std::vector<double>& w,
                     const std::vector<RowPair>& pairs) {
  if (pairs.empty()) return NAN;
  double right = 0;
  for (const auto& p : pairs) {
    double margin = 0;
    for (int64_t i = 0; i < h.dim; ++i)
      margin += w[i] * (h.row(p.a)[i] - h.row(p.b)[i]);
    right += margin * p.label > 0 ? 1.0 : margin == 0 ? 0.5 : 0.0;
  }
  return right / static_cast<double>(pairs.size());
}

std::function<QuestionPool(int64_t)> question_pools(const ElicitRecipe& r, const ElicitData& data,
                                                    const Embeddings& h, const std::string& user) {
  std::vector<int64_t> order = data.question_prompts;
  // FNV-1a of the name: std::hash may differ between standard libraries.
  const uint64_t name_hash = Fnv1a64().update(user).value();
  std::mt19937_64 rng(static_cast<uint64_t>(r.seed) * 1000003ULL ^ name_hash);
  for (int64_t i = static_cast<int64_t>(order.size()) - 1; i > 0; --i)
    std::swap(order[i], order[rng() % static_cast<uint64_t>(i + 1)]);
  return [&data, &h, order](int64_t t) {
    if (t < 0 || t >= static_cast<int64_t>(order.size()))
      throw Error("elicit", "question " + std::to_string(t + 1) + " asked, but only " +
                                std::to_string(order.size()) + " prompts are left for questions");
    const auto& c = data.prompts[static_cast<size_t>(order[static_cast<size_t>(t)])];
    QuestionPool pool{c.prompt, c.texts, {}};
    pool.features.assign(h.row(c.first_row),
                         h.row(c.first_row + static_cast<int64_t>(c.texts.size())));
    return pool;
  };
}

QueryLoopConfig query_config(const ElicitRecipe& r, elicit::Selector selector, int64_t dim) {
  QueryLoopConfig config;
  config.selector = selector;
  config.mh.samples = r.elicit.samples;
  config.mh.burn_in = r.elicit.burn_in;
  config.mh.thinning = r.elicit.thinning;
  config.mh.proposal_step = r.elicit.proposal_step;
  config.mh.seed = static_cast<uint64_t>(r.seed) * 7919ULL + static_cast<uint64_t>(selector);
  config.questions = r.question_counts().back();
  config.dim = dim;
  return config;
}

fs::path user_dir(const ElicitRecipe& r, const std::string& user, elicit::Selector selector) {
  return r.output_dir / "users" / user / enum_name(elicit::selector_names(), selector);
}

void check_profile_model(const fs::path& dir, const std::string& model_id) {
  const fs::path file = dir / "profile.json";
  if (!fs::exists(file)) return;
  nlohmann::json profile;
  try {
    profile = nlohmann::json::parse(read_file(file));
  } catch (const nlohmann::json::exception& e) {
    throw Error("elicit", file.string() + ": not valid JSON (" + e.what() + ")");
  }
  const std::string id = profile.value("reward_model_id", std::string());
  if (id != model_id)
    throw Error("elicit", file.string() + ": this profile was made with reward model " +
                              (id.empty() ? "(none)" : id) + " (" +
                              profile.value("reward_model", std::string("?")) +
                              "), not with this run's " + model_id +
                              "; its embedding means nothing under another model. Move the "
                              "user's folder away to start over with this model");
}

void write_profile(const fs::path& dir, const ElicitRecipe& r, const std::string& user,
                   elicit::Selector selector, const QueryLoopResult& result, int64_t dim,
                   const std::string& model_id, const std::vector<double>& accuracy) {
  nlohmann::json profile = {
      {"method", to_string(r.elicit.method)},
      {"user", user},
      {"selector", enum_name(elicit::selector_names(), selector)},
      {"answers", result.answers.size()},
      {"questions", r.question_counts().back()},
      {"reward_model", fs::absolute(r.output_dir / "export").lexically_normal().string()},
      {"reward_model_id", model_id},
      {"embedding_dim", dim},
      {"posterior_mean", result.posterior.mean()},
      {"posterior_samples", "posterior.safetensors"},
      {"acceptance_rate", result.posterior.acceptance_rate}};
  if (!accuracy.empty()) profile["heldout_accuracy"] = accuracy;
  fs::create_directories(dir);
  safetensors::save(
      dir / "posterior.safetensors",
      {{"samples",
        at::tensor(result.posterior.values, at::kDouble).view({result.posterior.count(), dim})}});
  write_file_atomic(dir / "profile.json", profile.dump(2) + "\n");
}

UserProfile read_profile(const fs::path& file) {
  if (!fs::is_regular_file(file)) throw Error("elicit", file.string() + ": no such profile");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(file));
  } catch (const nlohmann::json::exception& e) {
    throw Error("elicit", file.string() + ": not valid JSON (" + e.what() + ")");
  }
  UserProfile p;
  const auto text = [&](const char* key, std::string& out) {
    if (!j.contains(key) || !j[key].is_string())
      throw Error("elicit", file.string() + ": " + key + ": expected a string");
    out = j[key].get<std::string>();
  };
  text("user", p.user);
  text("selector", p.selector);
  text("reward_model", p.reward_model);
  text("reward_model_id", p.reward_model_id);
  if (!j.contains("posterior_mean") || !j["posterior_mean"].is_array() ||
      j["posterior_mean"].empty())
    throw Error("elicit", file.string() + ": posterior_mean: expected a list of numbers");
  for (const auto& v : j["posterior_mean"]) {
    if (!v.is_number())
      throw Error("elicit", file.string() + ": posterior_mean: expected a list of numbers");
    p.embedding.push_back(v.get<double>());
  }
  return p;
}

std::vector<double> profile_rewards(MultiRewardExport& model, const Tokenizer& tokenizer,
                                    const UserProfile& profile, const fs::path& profile_file,
                                    const std::vector<std::string>& prompts,
                                    const std::vector<std::string>& completions) {
  if (profile.reward_model_id != model.id)
    throw Error("elicit", profile_file.string() + ": this profile was made with reward model " +
                              profile.reward_model_id + " (" + profile.reward_model +
                              "), not with " + model.id +
                              "; its embedding means nothing under another model");
  const int64_t H = model.model->config().hidden_dim;
  if (static_cast<int64_t>(profile.embedding.size()) != H)
    throw Error("elicit", profile_file.string() + ": posterior_mean has " +
                              std::to_string(profile.embedding.size()) +
                              " entries, the reward model's hidden layer " + std::to_string(H));
  std::ostringstream quiet;
  const at::Tensor features =
      response_features(*model.backbone, tokenizer, model.encoding.prompt_template,
                        model.encoding.max_length, prompts, completions, /*cache_file=*/{}, quiet);
  const Embeddings h = embed_candidates(*model.model, features);
  std::vector<double> out;
  for (int64_t r = 0; r < static_cast<int64_t>(prompts.size()); ++r) {
    double v = 0;
    for (int64_t i = 0; i < H; ++i)
      v += profile.embedding[i] * h.row(r)[i];
    out.push_back(v);
  }
  return out;
}

}  // namespace tailor
