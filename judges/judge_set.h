// The judges of a stage's simulated users, visited one at a time: oracle mixtures (recipe key
// `users`) and reward exports (`reward_users`, judges/reward_judge.h).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "judges/judge.h"
#include "judges/reward_judge.h"

namespace tailor::judges {

using OracleUsers = std::map<std::string, std::map<std::string, double>>;       // user -> weights
using RewardUsers = std::map<std::string, std::map<std::string, std::string>>;  // user -> entry

// Calls use(user, judge) once for each of `users`, each of which must be in `oracle_users` or
// `reward_users`. A reward model is as large as a base, so the reward users are visited one
// export at a time: users naming the same export share one load (VPL users differ only by their
// context), and each export is dropped before the next one loads. The caller holds at most one
// reward model besides its own. Order: the oracle users, then each export's users, exports in the
// order their first user appears in `users`. Every rank must make the same call (reward judges
// split their scoring over options.comm).
void for_each_judge(const std::vector<std::string>& users, const OracleUsers& oracle_users,
                    const RewardUsers& reward_users, const RewardJudgeOptions& options,
                    const std::function<void(const std::string& user, Judge& judge)>& use);

}  // namespace tailor::judges
