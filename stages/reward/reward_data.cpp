#include "stages/reward/reward_data.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <ostream>
#include <random>
#include <set>
#include <sstream>
#include <tuple>

#include "common/error.h"
#include "common/fnv1a.h"
#include "data/preferences/rated_corpus.h"
#include "data/preferences/simulated_users.h"
#include "data/preferences/survey.h"
#include "data/preferences/synthetic_prefs.h"
#include "data/store/store.h"

namespace tailor {
namespace {

// Seeds of the draws that must not change with the training seed (split, survey).
constexpr uint64_t kSplitSalt = 0x5b1175eedULL;

std::vector<int32_t> join_truncated(std::vector<int32_t> prompt,
                                    const std::vector<int32_t>& response, int64_t max_length) {
  prompt.insert(prompt.end(), response.begin(), response.end());
  if (static_cast<int64_t>(prompt.size()) > max_length)
    prompt.erase(prompt.begin(), prompt.end() - max_length);
  if (prompt.empty()) throw Error("data", "a prompt and its response tokenize to nothing");
  return prompt;
}

// A seeded subset of `fraction` of 0..n-1 (at least 1, at most n - 1) as a membership mask.
std::vector<bool> held_out_mask(int64_t n, double fraction, uint64_t seed) {
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(order[i], order[rng() % (i + 1)]);
  const int64_t k = std::clamp<int64_t>(std::llround(fraction * n), 1, std::max<int64_t>(1, n - 1));
  std::vector<bool> mask(n, false);
  for (int64_t i = 0; i < k; ++i)
    mask[order[i]] = true;
  return mask;
}

data::RatedCorpus load_corpus(const RewardRecipe& r) {
  if (r.data.source == RewardDataSource::kSynthetic) {
    data::SyntheticOptions options;
    options.prompts = r.data.synthetic_prompts;
    options.seed = static_cast<uint64_t>(r.data.synthetic_seed);
    return data::make_synthetic_corpus(options);
  }
  return data::read_rated_corpus(r.data.path);
}

// Keeps a seeded subset of max_prompts prompts (and their responses).
data::RatedCorpus subset_prompts(const data::RatedCorpus& corpus, int64_t max_prompts,
                                 uint64_t seed) {
  const int64_t P = static_cast<int64_t>(corpus.prompts.size());
  if (max_prompts == 0 || max_prompts >= P) return corpus;
  const auto keep = held_out_mask(P, static_cast<double>(max_prompts) / P, seed);
  data::RatedCorpus out;
  out.aspects = corpus.aspects;
  out.source = corpus.source;
  std::vector<int64_t> new_index(P, -1);
  for (int64_t p = 0; p < P; ++p) {
    if (!keep[p]) continue;
    new_index[p] = static_cast<int64_t>(out.prompts.size());
    out.prompts.push_back(corpus.prompts[p]);
  }
  const int64_t A = corpus.num_aspects();
  for (size_t i = 0; i < corpus.responses.size(); ++i) {
    const int64_t p = new_index[corpus.response_prompt[i]];
    if (p < 0) continue;
    out.responses.push_back(corpus.responses[i]);
    out.response_prompt.push_back(p);
    out.ratings.insert(out.ratings.end(), corpus.ratings.begin() + i * A,
                       corpus.ratings.begin() + (i + 1) * A);
  }
  return out;
}

RewardData from_rated(const RewardRecipe& r, const data::FieldEncodeFn& encode, std::ostream& log) {
  const uint64_t fixed_seed = static_cast<uint64_t>(r.users.seed);
  const auto corpus = subset_prompts(load_corpus(r), r.data.max_prompts, fixed_seed ^ kSplitSalt);
  const auto users =
      data::make_users(r.users.kind, r.users.count, corpus.num_aspects(), fixed_seed);
  data::LabelOptions label;
  label.mode = r.users.label;
  label.temperature = r.users.temperature;
  label.conflict_only = r.users.conflict_only;
  const auto pairs = data::label_pairs(corpus, users, label, fixed_seed);
  if (pairs.empty())
    throw Error("data", corpus.source + ": the users label no pairs (users.kind " +
                            to_string(r.users.kind) +
                            (r.users.conflict_only ? ", conflict_only" : "") + ")");

  RewardData out;
  for (const auto& u : users)
    out.user_names.push_back(u.name);
  const auto eval_prompt = held_out_mask(static_cast<int64_t>(corpus.prompts.size()),
                                         r.data.eval_fraction, fixed_seed ^ (kSplitSalt << 1));

  // Survey questions: train (prompt, i < j) pairs, answered +1 (i preferred) / -1 / 0 per user.
  std::map<std::pair<int64_t, int64_t>, int64_t> question_of;
  std::vector<std::pair<int64_t, int64_t>> questions;
  for (const auto& p : pairs) {
    PreferenceExample ex{p.user, p.chosen, p.rejected};
    (eval_prompt[p.prompt] ? out.eval : out.train).push_back(ex);
    if (eval_prompt[p.prompt]) continue;
    const auto key = std::minmax(p.chosen, p.rejected);
    if (question_of.emplace(key, static_cast<int64_t>(questions.size())).second)
      questions.push_back(key);
  }
  const int64_t Q = static_cast<int64_t>(questions.size()), U = out.num_users();
  std::vector<int8_t> answers(Q * U, 0);
  for (const auto& ex : out.train) {
    const auto key = std::minmax(ex.chosen, ex.rejected);
    answers[question_of.at(key) * U + ex.user] = ex.chosen == key.first ? 1 : -1;
  }
  const auto survey = data::select_survey(answers, Q, U, r.vae.survey_size, r.vae.survey_selection,
                                          fixed_seed ^ 0x5e1ecULL);
  out.survey_questions = static_cast<int64_t>(survey.size());
  out.context_pool.resize(U);
  for (int64_t q : survey) {
    const auto [a, b] = questions[q];
    for (int64_t u = 0; u < U; ++u) {
      const int8_t answer = answers[q * U + u];
      if (answer != 0)
        out.context_pool[u].push_back(answer > 0 ? std::pair{a, b} : std::pair{b, a});
    }
  }

  // Token sequences of every response: prompt ids ++ response ids, as `tailor score` builds them.
  std::vector<std::vector<int32_t>> prompt_ids(corpus.prompts.size());
  for (size_t p = 0; p < corpus.prompts.size(); ++p)
    prompt_ids[p] = encode("prompt", corpus.prompts[p]);
  out.sequences.reserve(corpus.responses.size());
  for (size_t i = 0; i < corpus.responses.size(); ++i)
    out.sequences.push_back(join_truncated(prompt_ids[corpus.response_prompt[i]],
                                           encode("response", corpus.responses[i]),
                                           r.data.max_length));
  log << "[reward] data: " << corpus.prompts.size() << " prompts, " << corpus.responses.size()
      << " responses (" << corpus.source << "); " << U << " users (" << to_string(r.users.kind)
      << "), " << out.train.size() << " train / " << out.eval.size() << " eval pairs; survey of "
      << out.survey_questions << " questions (" << to_string(r.vae.survey_selection) << ")\n";
  return out;
}

RewardData from_pairs(const RewardRecipe& r, const data::FieldEncodeFn& encode, std::ostream& log) {
  data::ImportOptions options;
  options.encode_field = encode;
  const auto store = r.data.path.extension() == ".h5"
                         ? data::Store::open(r.data.path)
                         : data::Store::from_data(data::tokenize_jsonl(
                               r.data.path, data::StoreKind::pairs, {}, options));
  if (store.kind() != data::StoreKind::pairs)
    throw Error("recipe", "data.path: " + r.data.path.string() + " holds " +
                              data::kind_name(store.kind()) + " records, expected pairs");
  RewardData out;
  out.user_names = store.user_names();
  if (out.user_names.empty())
    throw Error("data", r.data.path.string() +
                            ": no record has a \"user\"; users.kind from_data "
                            "needs per-user labels");
  const uint64_t fixed_seed = static_cast<uint64_t>(r.users.seed);
  const auto eval_mask =
      held_out_mask(store.count(), r.data.eval_fraction, fixed_seed ^ kSplitSalt);
  std::mt19937_64 rng(fixed_seed ^ 0x5e1ecULL);
  std::vector<std::vector<int64_t>> train_of_user(out.user_names.size());
  for (int64_t i = 0; i < store.count(); ++i) {
    const int32_t user = store.user_index()[i];
    if (user < 0) continue;  // unlabelled records carry no per-user preference
    const auto prompt = store.ids("prompt_ids", i);
    const int64_t chosen = static_cast<int64_t>(out.sequences.size());
    out.sequences.push_back(join_truncated(prompt, store.ids("chosen_ids", i), r.data.max_length));
    out.sequences.push_back(
        join_truncated(prompt, store.ids("rejected_ids", i), r.data.max_length));
    PreferenceExample ex{user, chosen, chosen + 1};
    if (eval_mask[i]) {
      out.eval.push_back(ex);
    } else {
      train_of_user[user].push_back(static_cast<int64_t>(out.train.size()));
      out.train.push_back(ex);
    }
  }
  out.context_pool.resize(out.user_names.size());
  for (size_t u = 0; u < train_of_user.size(); ++u) {
    auto& mine = train_of_user[u];
    for (int64_t i = static_cast<int64_t>(mine.size()) - 1; i > 0; --i)
      std::swap(mine[i], mine[rng() % (i + 1)]);
    mine.resize(std::min<size_t>(mine.size(), r.vae.survey_size));
    for (int64_t t : mine)
      out.context_pool[u].push_back({out.train[t].chosen, out.train[t].rejected});
    out.survey_questions += static_cast<int64_t>(mine.size());
  }
  log << "[reward] data: " << store.count() << " pairs from " << r.data.path.string() << "; "
      << out.user_names.size() << " users, " << out.train.size() << " train / " << out.eval.size()
      << " eval pairs\n";
  return out;
}

}  // namespace

RewardData prepare_reward_data(const RewardRecipe& r, const data::FieldEncodeFn& encode,
                               std::ostream& log) {
  RewardData out = r.data.source == RewardDataSource::kPairs ? from_pairs(r, encode, log)
                                                             : from_rated(r, encode, log);
  if (out.train.empty())
    throw Error("data", "no training pairs (data.source " + to_string(r.data.source) + ")");
  if (out.eval.empty())
    throw Error("recipe", "data.eval_fraction: no held-out pairs; raise it or add data");
  for (int64_t u = 0; u < out.num_users(); ++u) {
    if (r.reward.kind == RewardKind::kVae && out.context_pool[u].empty())
      throw Error("data", "user " + out.user_names[u] +
                              " answered none of the survey questions; VPL needs context pairs "
                              "(raise vae.survey_size)");
  }
  return out;
}

namespace {

namespace fs = std::filesystem;

std::string absolute_or_empty(const fs::path& p) {
  return p.empty() ? std::string() : fs::absolute(p).string();
}

}  // namespace

std::string context_cache_key(const RewardRecipe& r) {
  // What shapes the embeddings; training keys (lr, steps, ...) do not.
  std::ostringstream text;
  text.precision(17);
  const auto& m = r.model;
  text << "model " << static_cast<int>(m.init) << ' ' << absolute_or_empty(m.path) << ' '
       << m.preset << ' ' << m.n_layer << ' ' << m.n_head << ' ' << m.n_embd << ' ' << m.n_positions
       << " seed " << (m.init == ModelInit::kRandom ? r.seed : 0) << " tokenizer "
       << absolute_or_empty(r.tokenizer) << " data " << to_string(r.data.source) << ' '
       << absolute_or_empty(r.data.path) << ' ' << r.data.synthetic_prompts << ' '
       << r.data.synthetic_seed << ' ' << r.data.max_prompts << ' ' << r.data.max_length << ' '
       << r.data.eval_fraction << " users " << to_string(r.users.kind) << ' ' << r.users.count
       << ' ' << to_string(r.users.label) << ' ' << r.users.temperature << ' '
       << r.users.conflict_only << ' ' << r.users.seed << " survey " << r.vae.survey_size << ' '
       << to_string(r.vae.survey_selection);
  // A bf16 backbone embeds differently (fp32 and bf16_autocast embed in fp32, outside autocast).
  if (r.train.precision == Precision::kBf16) text << " bf16";
  if (!r.data.path.empty() && fs::exists(r.data.path))
    text << ' ' << fs::file_size(r.data.path) << ' '
         << fs::last_write_time(r.data.path).time_since_epoch().count();
  return fnv1a64_hex(text.str());
}

}  // namespace tailor
