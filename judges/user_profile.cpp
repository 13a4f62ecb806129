#include "judges/user_profile.h"

#include <sstream>

#include <c10/core/GradMode.h>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "models/heads/multi_reward.h"
#include "models/io/multi_reward_export.h"
#include "models/tokenizer/tokenizer.h"
#include "train/features/response_features.h"

namespace tailor {
namespace fs = std::filesystem;

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
  p.method = j.value("method", std::string("twenty_questions"));
  if (j.contains("answers") && j["answers"].is_number_integer())
    p.answers = j["answers"].get<int64_t>();
  // The user's weights: PReF's lambda, or 20 Questions' posterior mean.
  const char* key = p.method == "pref" ? "lambda" : "posterior_mean";
  if (!j.contains(key) || !j[key].is_array() || j[key].empty())
    throw Error("elicit", file.string() + ": " + key + ": expected a list of numbers");
  for (const auto& v : j[key]) {
    if (!v.is_number())
      throw Error("elicit", file.string() + ": " + key + ": expected a list of numbers");
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
    throw Error("elicit", profile_file.string() + ": the user's weights have " +
                              std::to_string(profile.embedding.size()) +
                              " entries, the reward model's hidden layer " + std::to_string(H));
  std::ostringstream quiet;
  const at::Tensor features =
      response_features(*model.backbone, tokenizer, model.encoding.prompt_template,
                        model.encoding.max_length, prompts, completions, /*cache_file=*/{}, quiet);
  c10::NoGradGuard no_grad;
  model.model->eval();
  const at::Tensor h = model.model->hidden(features).to(at::kDouble).contiguous();
  const double* row = h.data_ptr<double>();
  std::vector<double> out;
  for (int64_t r = 0; r < static_cast<int64_t>(prompts.size()); ++r, row += H) {
    double v = 0;
    for (int64_t i = 0; i < H; ++i)
      v += profile.embedding[i] * row[i];
    out.push_back(v);
  }
  return out;
}

}  // namespace tailor
