#include "trainer/judges/judge_set.h"

#include <filesystem>
#include <memory>
#include <utility>

#include "common/error.h"

namespace tailor::judges {
namespace fs = std::filesystem;

void for_each_judge(const std::vector<std::string>& users, const OracleUsers& oracle_users,
                    const RewardUsers& reward_users, const RewardJudgeOptions& options,
                    const std::function<void(const std::string& user, Judge& judge)>& use) {
  // Reward users grouped by export, groups in order of first appearance.
  std::vector<std::pair<std::string, std::vector<std::string>>> groups;  // export -> users
  for (const auto& user : users) {
    if (const auto it = oracle_users.find(user); it != oracle_users.end()) {
      use(user, *make_oracle_judge(it->second));
      continue;
    }
    const auto rt = reward_users.find(user);
    if (rt == reward_users.end())
      throw Error("recipe", "user \"" + user + "\" has no judge: name it in users or reward_users");
    const std::string key = "reward_users." + user;
    const std::string dir = fs::weakly_canonical(reward_judge_spec(rt->second, key).model).string();
    auto group = groups.begin();
    while (group != groups.end() && group->first != dir)
      ++group;
    if (group == groups.end()) group = groups.insert(groups.end(), {dir, {}});
    group->second.push_back(user);
  }
  for (const auto& [dir, members] : groups) {
    std::vector<RewardJudgeSpec> specs;
    std::vector<std::string> keys;
    for (const auto& user : members) {
      keys.push_back("reward_users." + user);
      specs.push_back(reward_judge_spec(reward_users.at(user), keys.back()));
    }
    auto loaded = make_reward_judges(specs, keys, options);  // one model, dropped at scope end
    for (size_t i = 0; i < members.size(); ++i)
      use(members[i], *loaded[i]);
  }
}

}  // namespace tailor::judges
