// One user's elicitation, as the stage runs it for simulated users and `tailor elicit` runs it
// for a person: the embeddings h(x, y) of every candidate, the user's own order of the question
// prompts, the query loop's settings from the recipe, and the profile it leaves.
//
// Files, under OUTPUT_DIR/users/<user>/<selector>/:
//   answers.jsonl          one line per answered question, appended as answers come
//   profile.json           method, user, selector, answers, the user's weights (20 Questions:
//                          posterior_mean; PReF: lambda and its fit's Hessian), the reward
//                          model's path and id (a profile is only ever used with that model)
//   posterior.safetensors  20 Questions only: "samples", the M posterior samples [M, H] (float64)
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "judges/elicit/preference_posterior.h"
#include "judges/elicit/question_choice.h"
#include "judges/user_profile.h"
#include "stages/elicit/elicit_data.h"
#include "stages/elicit/elicit_recipe.h"
#include "stages/elicit/query_loop.h"

namespace tailor {

class MultiRewardImpl;
struct MultiRewardExport;
class Tokenizer;

// h(x, y) of every candidate row, float64 [rows, dim] row-major.
struct Embeddings {
  int64_t dim = 0;
  std::vector<double> values;
  const double* row(int64_t r) const { return values.data() + r * dim; }
};

// The model's hidden layer (eval mode, no gradients) on every row of `features`.
Embeddings embed_candidates(MultiRewardImpl& model, const at::Tensor& features);

// The share of `pairs` whose label the embedding w gets right (a zero margin counts half).
double pair_accuracy(const Embeddings& h, const std::vector<double>& w,
                     const std::vector<RowPair>& pairs);

// PReF's metric: the AUC-ROC of the margins w . (h_a - h_b) as a classifier of the label. Every
// pair counts in both orders (margin m with its label, -m with the opposite), so the value does
// not depend on which completion a pair happens to list first; ties count half (Mann-Whitney).
// 0.5 when w scores every pair 0, 1 when every margin has its label's sign.
double pair_auc(const Embeddings& h, const std::vector<double>& w,
                const std::vector<RowPair>& pairs);
// The same from the margins already signed by their labels (margin when the first completion
// won, -margin when the second did).
double signed_margin_auc(const std::vector<double>& signed_margins);

// Question t's pool for `user`: the user's own order of the question prompts (fixed by the seed
// and the user's name, the same for every selector, so selectors are compared on equal terms).
std::function<QuestionPool(int64_t)> question_pools(const ElicitRecipe& recipe,
                                                    const ElicitData& data, const Embeddings& h,
                                                    const std::string& user);

// elicit.* as the loop's settings for `selector`.
QueryLoopConfig query_config(const ElicitRecipe& recipe, elicit::Selector selector, int64_t dim);

// The recipe's method as a learner for `selector` over an embedding of `dim` (= pref.rank for
// PReF), seeded from the recipe's seed and the selector.
std::unique_ptr<Learner> make_learner(const ElicitRecipe& recipe, elicit::Selector selector,
                                      int64_t dim);

// OUTPUT_DIR/users/<user>/<selector>/.
std::filesystem::path user_dir(const ElicitRecipe& recipe, const std::string& user,
                               elicit::Selector selector);

// Refuses to continue a user whose profile was made with another reward model: Error("elicit",
// ...) naming the profile file, its id and `model_id`. A damaged profile is an error too.
void check_profile_model(const std::filesystem::path& dir, const std::string& model_id);

// Writes profile.json (and 20 Questions' posterior.safetensors) into `dir`, atomically, from
// the learner's fit to all of result.answers. `metric` is the held-out accuracy (20 Questions)
// or AUC (PReF) after 0..answers answers (empty for a person, whose labels are unknown).
void write_profile(const std::filesystem::path& dir, const ElicitRecipe& recipe,
                   const std::string& user, elicit::Selector selector,
                   const QueryLoopResult& result, const Learner& learner, int64_t dim,
                   const std::string& model_id, const std::vector<double>& metric);

}  // namespace tailor
