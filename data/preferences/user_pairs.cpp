#include "data/preferences/user_pairs.h"

#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace tailor::data {

UserPairs::UserPairs(std::vector<UserPair> pairs) : pairs_(std::move(pairs)) {}

UserPairs UserPairs::from_jsonl(const std::filesystem::path& file,
                                const FieldEncodeFn& encode_field) {
  std::ifstream in(file);
  if (!in) throw Error("data", file.string() + ": cannot open");
  std::vector<UserPair> pairs;
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = file.string() + ":" + std::to_string(number);
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error("data", where + ": not JSON (" + e.what() + ")");
    }
    if (!record.is_object()) throw Error("data", where + ": expected a JSON object");
    const auto text = [&](const char* key) {
      if (!record.contains(key) || !record[key].is_string())
        throw Error("data",
                    where + ": \"" + key +
                        "\" must be a string (a pair needs user, prompt, chosen, rejected)");
      return record[key].get<std::string>();
    };
    UserPair pair;
    pair.user = text("user");
    if (pair.user.empty()) throw Error("data", where + ": \"user\" is empty");
    pair.prompt_text = text("prompt");
    pair.chosen_text = text("chosen");
    pair.rejected_text = text("rejected");
    pair.prompt = encode_field("prompt", pair.prompt_text);
    pair.chosen = encode_field("response", pair.chosen_text);
    pair.rejected = encode_field("response", pair.rejected_text);
    if (pair.chosen.empty() || pair.rejected.empty())
      throw Error("data", where + ": \"chosen\" and \"rejected\" must not be empty");
    const auto flag = [&](const char* key) {
      if (!record.contains(key)) return false;
      if (!record[key].is_boolean())
        throw Error("data", where + ": \"" + key + "\" must be true or false");
      return record[key].get<bool>();
    };
    pair.chosen_truncated = flag("chosen_truncated");
    pair.rejected_truncated = flag("rejected_truncated");
    pairs.push_back(std::move(pair));
  }
  if (pairs.empty()) throw Error("data", file.string() + ": no pairs");
  return UserPairs(std::move(pairs));
}

std::vector<std::string> UserPairs::users() const {
  std::set<std::string> names;
  for (const auto& p : pairs_)
    names.insert(p.user);
  return {names.begin(), names.end()};
}

std::vector<int64_t> UserPairs::indices_of(const std::string& user) const {
  std::vector<int64_t> out;
  for (size_t i = 0; i < pairs_.size(); ++i)
    if (pairs_[i].user == user) out.push_back(static_cast<int64_t>(i));
  return out;
}

PairBatch UserPairs::collate(const std::vector<int64_t>& indices,
                             const CollateOptions& options) const {
  if (indices.empty()) throw Error("data", "cannot collate an empty batch of pairs");
  const size_t B = indices.size();
  std::vector<std::vector<int32_t>> rows(2 * B);
  std::vector<std::vector<bool>> learned(2 * B);
  if (options.append_eos && options.eos_id < 0)
    throw Error("data", "append_eos needs CollateOptions.eos_id");
  PairBatch batch;
  for (size_t b = 0; b < B; ++b) {
    const UserPair& p = pair(indices[b]);
    batch.users.push_back(p.user);
    for (size_t side = 0; side < 2; ++side) {
      const auto& response = side == 0 ? p.chosen : p.rejected;
      auto& row = rows[side * B + b];
      row = p.prompt;
      row.insert(row.end(), response.begin(), response.end());
      // The EOS here rather than in collate_rows: a truncated response has none.
      if (options.append_eos && !(side == 0 ? p.chosen_truncated : p.rejected_truncated))
        row.push_back(options.eos_id);
      learned[side * B + b].assign(p.prompt.size(), false);
      learned[side * B + b].resize(row.size(), true);
    }
  }
  CollateOptions rows_options = options;
  rows_options.append_eos = false;
  batch.rows = collate_rows(std::move(rows), std::move(learned), rows_options);
  return batch;
}

}  // namespace tailor::data
