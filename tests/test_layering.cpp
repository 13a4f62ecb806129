// The layering of the source tree (docs/architecture.md), checked on every #include of the
// production code. The layers come from CMakeLists.txt (TAILOR_LAYERS, bottom up; folders in one
// layer are peers), so the build and this test read the same list. Rules:
//   1. a file may include its own folder and the folders of lower layers, nothing above and no
//      peer (models and data do not include each other);
//   2. inside stages/, a stage folder includes only itself (and lower layers); only the files at
//      the top of stages/ (the registry) include the stage folders;
//   3. every quoted include names a file of the repository, by its path from the root.
// A violation is reported as "file:line: ..." with the rule it breaks.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace {
namespace fs = std::filesystem;

// "common|models data|dist|..." -> folder -> rank (0 = bottom).
std::map<std::string, int> layer_ranks(const std::string& layers) {
  std::map<std::string, int> rank;
  std::stringstream by_layer(layers);
  std::string layer;
  for (int r = 0; std::getline(by_layer, layer, '|'); ++r) {
    std::stringstream folders(layer);
    std::string folder;
    while (folders >> folder)
      rank[folder] = r;
  }
  return rank;
}

std::string first_component(const std::string& path) {
  return path.substr(0, path.find('/'));
}

// "stages/dpo/dpo_stage.cpp" -> "dpo"; "stages/registry.cpp" -> "" (the top of stages/).
std::string stage_folder(const std::string& path) {
  const size_t first = path.find('/');
  const size_t second = path.find('/', first + 1);
  return second == std::string::npos ? "" : path.substr(first + 1, second - first - 1);
}

struct Include {
  std::string file;  // from the repository root
  int line;
  std::string target;
};

std::vector<Include> quoted_includes(const fs::path& root, const std::string& file) {
  static const std::regex pattern(R"re(^\s*#\s*include\s*"([^"]+)")re");
  std::vector<Include> out;
  std::ifstream in(root / file);
  std::string text;
  for (int line = 1; std::getline(in, text); ++line) {
    std::smatch m;
    if (std::regex_search(text, m, pattern)) out.push_back({file, line, m[1].str()});
  }
  return out;
}

// What is wrong with one include, or "" when it is allowed.
std::string violation(const fs::path& root, const std::map<std::string, int>& rank,
                      const Include& inc) {
  if (!fs::is_regular_file(root / inc.target))
    return "includes \"" + inc.target + "\", which is not a file of the repository (rule 3)";
  const std::string from = first_component(inc.file), to = first_component(inc.target);
  const auto to_rank = rank.find(to);
  if (to_rank == rank.end())
    return "includes \"" + inc.target + "\" from " + to + "/, which is no layer (rule 3)";
  const int r_from = rank.at(from), r_to = to_rank->second;
  if (from != to && r_to == r_from)
    return "includes \"" + inc.target + "\": " + from + "/ and " + to +
           "/ are peers in one layer and use neither each other (rule 1)";
  if (r_to > r_from)
    return "includes \"" + inc.target + "\": " + from + "/ is below " + to + "/ (rule 1)";
  if (from == "stages" && to == "stages") {
    const std::string mine = stage_folder(inc.file), theirs = stage_folder(inc.target);
    if (!mine.empty() && theirs != mine)
      return "includes \"" + inc.target + "\": stage folder stages/" + mine + "/ uses " +
             (theirs.empty() ? "the registry" : "stages/" + theirs + "/") +
             "; code two stages share belongs in a lower layer (rule 2)";
  }
  return "";
}

std::vector<std::string> violations(const fs::path& root, const std::map<std::string, int>& rank) {
  std::vector<std::string> out;
  for (const auto& [folder, r] : rank) {
    if (!fs::is_directory(root / folder)) continue;
    for (const auto& entry : fs::recursive_directory_iterator(root / folder)) {
      const std::string ext = entry.path().extension().string();
      if (!entry.is_regular_file() || (ext != ".h" && ext != ".cpp")) continue;
      const std::string file = fs::relative(entry.path(), root).generic_string();
      for (const Include& inc : quoted_includes(root, file)) {
        const std::string problem = violation(root, rank, inc);
        if (!problem.empty())
          out.push_back(inc.file + ":" + std::to_string(inc.line) + ": " + problem);
      }
    }
  }
  return out;
}

const std::map<std::string, int>& ranks() {
  static const std::map<std::string, int> r = layer_ranks(TAILOR_LAYERS);
  return r;
}

TEST(Layering, EveryIncludeFollowsTheLayers) {
  ASSERT_GE(ranks().size(), 8u) << "TAILOR_LAYERS: " << TAILOR_LAYERS;
  const auto found = violations(TAILOR_SOURCE_DIR, ranks());
  for (const auto& v : found)
    ADD_FAILURE() << v;
  EXPECT_TRUE(found.empty());
}

// The rules themselves, on a small tree written here: each forbidden direction is caught and
// named, and the allowed ones pass.
TEST(Layering, TheRulesCatchEachForbiddenDirection) {
  const fs::path root = fs::temp_directory_path() / "tailor_layering_rules";
  fs::remove_all(root);
  const auto touch = [&](const std::string& file) {
    fs::create_directories((root / file).parent_path());
    std::ofstream(root / file) << "\n";
  };
  for (const char* f : {"common/a.h", "models/m.h", "data/d.h", "train/t.h", "stages/registry.h",
                        "stages/sft/s.h", "stages/dpo/p.h", "cli/c.h", "tests/x.h"})
    touch(f);
  const std::map<std::string, int> rank = layer_ranks("common|models data|dist|train|stages|cli");
  const auto check = [&](const std::string& from, const std::string& to) {
    return violation(root, rank, {from, 1, to});
  };
  EXPECT_EQ(check("train/t.h", "common/a.h"), "");
  EXPECT_EQ(check("stages/sft/s.h", "train/t.h"), "");
  EXPECT_EQ(check("stages/registry.h", "stages/dpo/p.h"), "");
  EXPECT_EQ(check("stages/dpo/p.h", "stages/dpo/p.h"), "");
  EXPECT_NE(check("common/a.h", "train/t.h").find("common/ is below train/ (rule 1)"),
            std::string::npos);
  EXPECT_NE(check("models/m.h", "data/d.h").find("peers"), std::string::npos);
  EXPECT_NE(check("stages/dpo/p.h", "stages/sft/s.h").find("stages/sft/"), std::string::npos);
  EXPECT_NE(check("stages/dpo/p.h", "stages/registry.h").find("the registry"), std::string::npos);
  EXPECT_NE(check("train/t.h", "train/missing.h").find("not a file"), std::string::npos);
  EXPECT_NE(check("train/t.h", "tests/x.h").find("no layer"), std::string::npos);
  fs::remove_all(root);
}

}  // namespace
