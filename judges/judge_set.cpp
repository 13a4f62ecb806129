#include "judges/judge_set.h"

#include <algorithm>
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
  struct Group {
    std::string dir;  // the export, canonical
    std::vector<std::string> users, keys;
    std::vector<RewardJudgeSpec> specs;
  };
  std::vector<Group> groups;
  for (const auto& user : users) {
    if (const auto it = oracle_users.find(user); it != oracle_users.end()) {
      use(user, *make_oracle_judge(it->second));
      continue;
    }
    const auto rt = reward_users.find(user);
    if (rt == reward_users.end())
      throw Error("recipe", "user \"" + user + "\" has no judge: name it in users or reward_users");
    const std::string key = "reward_users." + user;
    RewardJudgeSpec spec = reward_judge_spec(rt->second, key);
    const std::string dir = fs::weakly_canonical(reward_judge_model(spec, key)).string();
    auto group =
        std::find_if(groups.begin(), groups.end(), [&](const Group& g) { return g.dir == dir; });
    if (group == groups.end()) group = groups.insert(groups.end(), Group{dir, {}, {}, {}});
    group->users.push_back(user);
    group->keys.push_back(key);
    group->specs.push_back(std::move(spec));
  }
  for (const Group& group : groups) {
    auto loaded = make_reward_judges(group.specs, group.keys, options);  // dropped at scope end
    for (size_t i = 0; i < group.users.size(); ++i)
      use(group.users[i], *loaded[i]);
  }
}

}  // namespace tailor::judges
