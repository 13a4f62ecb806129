// A user's profile from the elicit stage (stages/elicit/elicit_session.h writes profile.json) as a
// reward: r(x, y) = w . h(x, y), with w the user's weights (20 Questions' posterior mean, PReF's
// lambda) and h the hidden layer of the multi-reward export the profile was made with, on the
// features of its frozen backbone. `tailor score --profile` and the dpo stage's profile judges
// (reward_users: {alice: {profile: FILE}}, judges/reward_judge.h) score with it.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace tailor {

struct MultiRewardExport;
class Tokenizer;

// What scoring with a profile needs from profile.json.
struct UserProfile {
  std::string user, selector, method, reward_model, reward_model_id;
  std::vector<double> embedding;  // the user's weights: 20 Questions' posterior mean, PReF's lambda
  int64_t answers = 0;            // how many answers the weights were fitted to
};

// Reads profile.json; Error("elicit", ...) naming the file and the field that is missing or of
// the wrong type.
UserProfile read_profile(const std::filesystem::path& file);

// The profile's reward w . h(prompt, completion) of each (prompts[i], completions[i]) under
// `model` (its backbone's features as the run encoded them, its hidden layer), float64. Refuses
// a profile made with another reward model (Error naming `profile_file` and both ids).
std::vector<double> profile_rewards(MultiRewardExport& model, const Tokenizer& tokenizer,
                                    const UserProfile& profile,
                                    const std::filesystem::path& profile_file,
                                    const std::vector<std::string>& prompts,
                                    const std::vector<std::string>& completions);

}  // namespace tailor
