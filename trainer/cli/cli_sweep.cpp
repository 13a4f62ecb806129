// tailor sweep RECIPE.yaml [RECIPE.yaml ...] [key=value ...] [--seeds 0,1,2] [--table FILE]
//
// Runs every recipe once per seed (as `tailor run RECIPE seed=S output_dir=OUT/seedS`, with
// OUT the recipe's own output_dir, or OUT/<recipe file stem> when recipes share one), then reads
// each run's summary.json and prints the seed report's table: held-out accuracy mean ± std over
// seeds, how many runs converged, the steps and epochs they took to converge, and wall time.
// --table also writes it (Markdown) to FILE, and OUT/sweep.json keeps the numbers of every run. A
// run that fails is reported in the table and does not stop the others; the exit code is then 1.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "trainer/cli/commands.h"
#include "trainer/recipe/stages.h"

namespace tailor::cli {
namespace fs = std::filesystem;
namespace {

struct Stats {
  double mean = NAN, std = NAN;
};

// Mean and sample standard deviation (n - 1; 0 for a single value).
Stats stats_of(const std::vector<double>& v) {
  Stats s;
  if (v.empty()) return s;
  double sum = 0;
  for (double x : v)
    sum += x;
  s.mean = sum / v.size();
  double ss = 0;
  for (double x : v)
    ss += (x - s.mean) * (x - s.mean);
  s.std = v.size() > 1 ? std::sqrt(ss / (v.size() - 1)) : 0.0;
  return s;
}

std::string fixed(double v, int digits) {
  if (std::isnan(v)) return "–";
  std::ostringstream out;
  out << std::fixed << std::setprecision(digits) << v;
  return out.str();
}

// "vae + adaptive + pcgrad + contrastive 0.5" from a summary.
std::string variant_of(const nlohmann::json& s) {
  std::string v = s.value("reward_kind", std::string("?"));
  if (s.value("sampling", std::string()) == "adaptive") v += " + adaptive";
  const std::string surgery = s.value("grad_surgery", std::string("none"));
  if (surgery != "none") v += " + " + surgery;
  if (s.value("reward_kind", std::string()) == "vae" && s.value("contrastive", 0.0) > 0) {
    std::ostringstream c;
    c << s["contrastive"].get<double>();
    v += " + contrastive " + c.str();
  }
  return v;
}

}  // namespace

int sweep_command(const std::vector<std::string>& args) {
  CLI::App app{"Run recipes over several seeds and print the accuracy / convergence table.",
               args.at(0)};
  std::vector<std::string> items;
  std::string seeds_text = "0,1,2";
  std::string table_file;
  app.add_option("items", items, "recipe files, then key=value overrides applied to every run")
      ->required();
  app.add_option("--seeds", seeds_text, "comma-separated seeds (default 0,1,2)");
  app.add_option("--table", table_file, "also write the Markdown table to this file");
  std::vector<std::string> reversed(args.rbegin(), args.rend() - 1);
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  std::vector<std::string> recipes, overrides;
  for (const auto& item : items)
    (item.find('=') != std::string::npos ? overrides : recipes).push_back(item);
  if (recipes.empty()) throw Error("sweep", "no recipe file given");
  std::vector<int64_t> seeds;
  std::stringstream seed_list(seeds_text);
  for (std::string s; std::getline(seed_list, s, ',');) {
    try {
      size_t used = 0;
      seeds.push_back(std::stoll(s, &used));
      if (used != s.size() || seeds.back() < 0) throw std::invalid_argument(s);
    } catch (const std::exception&) {
      throw Error("sweep", "--seeds: expected comma-separated non-negative integers, got \"" +
                               seeds_text + "\"");
    }
  }

  std::ostringstream table;
  table << "| recipe | variant | accuracy (mean ± std) | converged | steps to converge | epochs to "
           "converge | wall time per run |\n|---|---|---|---|---|---|---|\n";
  bool all_ok = true;
  // Validate every recipe before any seed runs. Recipes that share an output_dir (e.g. one
  // output_dir=... override for all) each get a subdirectory named after the recipe file.
  std::vector<fs::path> outs;
  for (const auto& recipe : recipes) {
    const std::string text = read_file(recipe);
    const Stage& stage = recipe_stage(text, recipe, overrides);
    outs.push_back(stage.resolve(text, recipe, overrides).get<std::string>("output_dir"));
  }
  const std::vector<fs::path> given = outs;
  for (size_t i = 0; i < recipes.size(); ++i) {
    if (std::count(given.begin(), given.end(), given[i]) > 1)
      outs[i] = given[i] / fs::path(recipes[i]).stem();
  }
  for (size_t r = 0; r < recipes.size(); ++r) {
    const std::string& recipe = recipes[r];
    const fs::path out = outs[r];
    nlohmann::json runs = nlohmann::json::array();
    std::vector<double> accuracy, steps, epochs, wall;
    int converged = 0, failed = 0;
    std::string variant = "?";
    for (int64_t seed : seeds) {
      const fs::path run_dir = out / ("seed" + std::to_string(seed));
      std::vector<std::string> run_args = {"tailor run", recipe};
      run_args.insert(run_args.end(), overrides.begin(), overrides.end());
      run_args.push_back("seed=" + std::to_string(seed));
      run_args.push_back("output_dir=" + run_dir.string());
      std::cerr << "[sweep] " << recipe << " seed " << seed << " -> " << run_dir.string() << "\n";
      try {
        if (run_command(run_args) != 0) throw Error("sweep", "run exited non-zero");
        const auto summary = nlohmann::json::parse(read_file(run_dir / "summary.json"));
        variant = variant_of(summary);
        accuracy.push_back(summary.at("accuracy").get<double>());
        wall.push_back(summary.at("wall_seconds").get<double>());
        if (summary.at("converged").get<bool>()) {
          ++converged;
          steps.push_back(summary.at("converge_step").get<double>());
          epochs.push_back(summary.at("converge_epoch").get<double>());
        }
        runs.push_back({{"seed", seed}, {"summary", summary}});
      } catch (const std::exception& e) {
        std::cerr << "[sweep] " << recipe << " seed " << seed << " failed: " << e.what() << "\n";
        runs.push_back({{"seed", seed}, {"error", e.what()}});
        ++failed;
        all_ok = false;
      }
    }
    const Stats acc = stats_of(accuracy), st = stats_of(steps), ep = stats_of(epochs),
                w = stats_of(wall);
    table << "| " << fs::path(recipe).filename().string() << " | " << variant << " | "
          << fixed(acc.mean, 3) << " ± " << fixed(acc.std, 3) << " | " << converged << "/"
          << seeds.size() << (failed ? " (" + std::to_string(failed) + " failed)" : "") << " | "
          << fixed(st.mean, 0) << " | " << fixed(ep.mean, 2) << " | " << fixed(w.mean, 0)
          << " s |\n";
    fs::create_directories(out);
    write_file_atomic(
        out / "sweep.json",
        nlohmann::json({{"recipe", recipe}, {"overrides", overrides}, {"runs", runs}}).dump(2) +
            "\n");
  }
  std::cout << table.str() << std::flush;
  if (!table_file.empty()) write_file_atomic(table_file, table.str());
  return all_ok ? 0 : 1;
}

}  // namespace tailor::cli
