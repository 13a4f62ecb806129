// tailor sweep RECIPE.yaml [RECIPE.yaml ...] [key=value ...] [--seeds 0,1,2] [--table FILE]
//
// Runs every recipe once per seed (as `tailor run RECIPE seed=S output_dir=OUT/seedS`, with
// OUT the recipe's own output_dir, or OUT/<recipe file stem> when recipes share one), then reads
// each run's summary.json and prints the tables of cli/sweep_table.h: for reward-stage
// recipes the seed report's table (held-out accuracy mean ± std over seeds, how many runs
// converged, the steps and epochs they took to converge, wall time); for dpo recipes one row per
// user (win rate against the base, held-out reward accuracy and margin, each mean ± std over
// seeds; seeds finished; wall time) and each recipe's cross-user win-rate matrix averaged over
// the seeds; for elicit recipes one row per user and selector (held-out accuracy after each K of
// elicit.questions, mean ± std). A sweep mixing stages prints each table. --table also writes them
// (Markdown) to FILE, and OUT/sweep.json keeps the numbers of every run. A run that fails is
// reported in the table and does not stop the others; the exit code is then 1.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/sweep_table.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/markdown_table.h"
#include "stages/registry.h"

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

std::string mean_std(const Stats& s, int digits) {
  return fixed(s.mean, digits) + " ± " + fixed(s.std, digits);
}

// "2/3" seeds, with " (1 failed)" when some failed.
std::string of_seeds(size_t count, size_t seeds, size_t failed) {
  return std::to_string(count) + "/" + std::to_string(seeds) +
         (failed ? " (" + std::to_string(failed) + " failed)" : "");
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

std::string file_name(const std::string& recipe) {
  return fs::path(recipe).filename().string();
}

// The summaries of the runs that finished.
std::vector<const nlohmann::json*> finished_summaries(const SweepRecipe& recipe) {
  std::vector<const nlohmann::json*> out;
  for (const auto& run : recipe.runs)
    if (run.contains("summary")) out.push_back(&run.at("summary"));
  return out;
}

// Appends `name` to `order` unless it is there already (first-seen order).
void add_name(std::vector<std::string>& order, const std::string& name) {
  if (std::find(order.begin(), order.end(), name) == order.end()) order.push_back(name);
}

// A number at json[a][b], or none.
bool number_at(const nlohmann::json& j, const std::string& a, const std::string& b, double* out) {
  if (!j.is_object() || !j.contains(a) || !j[a].is_object() || !j[a].contains(b) ||
      !j[a][b].is_number())
    return false;
  *out = j[a][b].get<double>();
  return true;
}

void reward_row(std::ostream& table, const SweepRecipe& recipe) {
  std::vector<double> accuracy, steps, epochs, wall;
  size_t converged = 0;
  std::string variant = "?";
  const auto summaries = finished_summaries(recipe);
  for (const nlohmann::json* s : summaries) {
    variant = variant_of(*s);
    accuracy.push_back(s->at("accuracy").get<double>());
    wall.push_back(s->at("wall_seconds").get<double>());
    if (s->at("converged").get<bool>()) {
      ++converged;
      steps.push_back(s->at("converge_step").get<double>());
      epochs.push_back(s->at("converge_epoch").get<double>());
    }
  }
  const size_t failed = recipe.runs.size() - summaries.size();
  table << "| " << file_name(recipe.recipe) << " | " << variant << " | "
        << mean_std(stats_of(accuracy), 3) << " | "
        << of_seeds(converged, recipe.runs.size(), failed) << " | "
        << fixed(stats_of(steps).mean, 0) << " | " << fixed(stats_of(epochs).mean, 2) << " | "
        << fixed(stats_of(wall).mean, 0) << " s |\n";
}

// One row per user of the recipe's finished runs (one row with user "–" when none finished).
void dpo_rows(std::ostream& table, const SweepRecipe& recipe) {
  const auto summaries = finished_summaries(recipe);
  std::vector<std::string> users;
  std::vector<double> wall;
  for (const nlohmann::json* s : summaries) {
    for (const auto& user : s->at("users"))
      add_name(users, user.get<std::string>());
    wall.push_back(s->at("wall_seconds").get<double>());
  }
  const size_t failed = recipe.runs.size() - summaries.size();
  const std::string tail = " | " + of_seeds(summaries.size(), recipe.runs.size(), failed) + " | " +
                           fixed(stats_of(wall).mean, 0) + " s |\n";
  if (users.empty()) {
    table << "| " << file_name(recipe.recipe) << " | – | – ± – | – ± – | – ± –" << tail;
    return;
  }
  for (const auto& user : users) {
    std::vector<double> win, accuracy, margin;
    for (const nlohmann::json* s : summaries) {
      double v = 0;
      if (s->contains("win_rate") && number_at(s->at("win_rate"), user, "rate", &v))
        win.push_back(v);
      if (s->contains("eval") && number_at(s->at("eval"), user, "rewards/accuracies", &v))
        accuracy.push_back(v);
      if (s->contains("eval") && number_at(s->at("eval"), user, "rewards/margins", &v))
        margin.push_back(v);
    }
    table << "| " << file_name(recipe.recipe) << " | " << user << " | "
          << mean_std(stats_of(win), 3) << " | " << mean_std(stats_of(accuracy), 3) << " | "
          << mean_std(stats_of(margin), 3) << tail;
  }
}

// The recipe's cross-user matrix, each cell the mean over the runs that have it; nothing when no
// run has one.
void cross_user_table(std::ostream& table, const SweepRecipe& recipe) {
  std::vector<std::string> adapters, judges;
  std::map<std::pair<std::string, std::string>, std::vector<double>> cells;
  size_t runs = 0;
  for (const nlohmann::json* s : finished_summaries(recipe)) {
    if (!s->contains("cross_user")) continue;
    const auto& cross = s->at("cross_user");
    const auto& rows = cross.at("adapters");
    const auto& columns = cross.at("judges");
    const auto& matrix = cross.at("win_rate");
    ++runs;
    for (size_t i = 0; i < rows.size(); ++i) {
      add_name(adapters, rows[i].get<std::string>());
      for (size_t j = 0; j < columns.size(); ++j) {
        add_name(judges, columns[j].get<std::string>());
        cells[{rows[i].get<std::string>(), columns[j].get<std::string>()}].push_back(
            matrix.at(i).at(j).get<double>());
      }
    }
  }
  if (runs == 0) return;
  table << "\nCross-user win rate against the base, " << file_name(recipe.recipe) << ", mean over "
        << runs << (runs == 1 ? " seed" : " seeds") << " (rows: adapter, columns: judge):\n\n";
  write_markdown_header(table, "adapter \\ judge", judges, "---");
  for (const auto& adapter : adapters) {
    table << "| " << adapter << " |";
    for (const auto& judge : judges) {
      const auto cell = cells.find({adapter, judge});
      table << " "
            << (cell == cells.end() ? std::string("–") : fixed(stats_of(cell->second).mean, 3))
            << " |";
    }
    table << "\n";
  }
}

// One row per (user, selector) of an elicit recipe's finished runs, the unpersonalised model's
// metric first ("default"), with the held-out metric (summary `metric`: accuracy for 20
// Questions, auc for PReF) after each K as mean ± std over seeds; then, with several users, the
// mean over users per selector ("(mean)", from summary `selector_means`).
void elicit_rows(std::ostream& table, const SweepRecipe& recipe, std::vector<std::string>& ks) {
  const auto summaries = finished_summaries(recipe);
  std::vector<std::string> users, selectors = {"default"};
  std::vector<double> wall;
  std::string metric = "accuracy";
  for (const nlohmann::json* s : summaries) {
    metric = s->value("metric", std::string("accuracy"));
    for (const auto& k : s->at("questions"))
      add_name(ks, std::to_string(k.get<int64_t>()));
    for (const auto& [user, u] : s->at("users").items()) {
      add_name(users, user);
      for (const auto& [selector, v] : u.at("selectors").items())
        add_name(selectors, selector);
    }
    wall.push_back(s->at("wall_seconds").get<double>());
  }
  const size_t failed = recipe.runs.size() - summaries.size();
  const std::string tail = " " + of_seeds(summaries.size(), recipe.runs.size(), failed) + " | " +
                           fixed(stats_of(wall).mean, 0) + " s |\n";
  const auto row = [&](const std::string& user, const std::string& selector, auto value) {
    table << "| " << file_name(recipe.recipe) << " | " << user << " | " << selector << " | "
          << metric << " |";
    for (const auto& k : ks) {
      std::vector<double> values;
      for (const nlohmann::json* s : summaries) {
        double v = 0;
        if (value(*s, k, &v)) values.push_back(100 * v);
      }
      table << " " << mean_std(stats_of(values), 1) << " |";
    }
    table << tail;
  };
  for (const auto& user : users)
    for (const auto& selector : selectors)
      row(user, selector, [&](const nlohmann::json& s, const std::string& k, double* v) {
        if (!s.at("users").contains(user)) return false;
        const auto& u = s.at("users").at(user);
        if (selector == "default") {
          *v = u.at("default_" + metric).get<double>();
          return true;
        }
        return u.at("selectors").contains(selector) &&
               number_at(u.at("selectors").at(selector), metric, k, v);
      });
  if (users.size() < 2) return;
  for (const auto& selector : selectors) {
    if (selector == "default") continue;
    row("(mean of users)", selector, [&](const nlohmann::json& s, const std::string& k, double* v) {
      if (!s.contains("selector_means")) return false;
      const auto& curve = s.at("selector_means").at("mean_curve");
      const auto t = std::stoul(k);
      if (!curve.contains(selector) || t >= curve.at(selector).size()) return false;
      *v = curve.at(selector).at(t).get<double>();
      return true;
    });
  }
}

// A chain recipe's table (seed 000's Table 2): one row per method (summary `table`, in its
// order), one column per user, the win rate against the base in % as mean ± std over the seeds
// that finished; then each chain's margin over the largest baseline (summary
// `margin_over_baseline_n<N>`), in points.
void chain_table(std::ostream& table, const SweepRecipe& recipe) {
  const auto summaries = finished_summaries(recipe);
  if (summaries.empty()) return;
  std::vector<std::string> users, methods;
  std::map<std::pair<std::string, std::string>, std::vector<double>> cells;  // (method, user)
  std::map<std::string, bool> marked;  // method: its judge also labelled the training pairs
  std::vector<double> wall;
  for (const nlohmann::json* s : summaries) {
    for (const auto& row : s->at("table")) {
      const std::string method = row.at("method");
      add_name(methods, method);
      for (const auto& [user, rate] : row.at("win_rate").items()) {
        add_name(users, user);
        cells[{method, user}].push_back(100 * rate.get<double>());
        if (row.contains("judge_picked_training_pairs") &&
            row["judge_picked_training_pairs"].value(user, false))
          marked[method] = true;
      }
    }
    for (const auto& [key, margins] : s->items()) {
      if (key.rfind("margin_over_", 0) != 0) continue;
      for (const auto& [chain, by_user] : margins.items()) {
        const std::string name = chain + " − " + key.substr(std::string("margin_over_").size());
        add_name(methods, name);
        for (const auto& [user, d] : by_user.items())
          cells[{name, user}].push_back(100 * d.get<double>());
      }
    }
    wall.push_back(s->at("wall_seconds").get<double>());
  }
  const size_t failed = recipe.runs.size() - summaries.size();
  std::vector<std::string> user_columns;
  for (const auto& user : users)
    user_columns.push_back(user + " (% win vs base, mean ± std)");
  write_markdown_header(table, file_name(recipe.recipe) + ": method", user_columns);
  for (const auto& method : methods) {
    table << "| " << method << (marked.count(method) ? " *" : "") << " |";
    for (const auto& user : users) {
      const auto cell = cells.find({method, user});
      table << " " << (cell == cells.end() ? std::string("–") : mean_std(stats_of(cell->second), 1))
            << " |";
    }
    table << "\n";
  }
  table << "\n"
        << of_seeds(summaries.size(), recipe.runs.size(), failed) << "; "
        << fixed(stats_of(wall).mean, 0)
        << " s per run. Judged by each user's oracle alone; * that oracle also labelled the "
           "method's training pairs. A − row is a chain's margin over the baseline, in points.\n";
}

// An agent recipe's tables (seed 002): the win rates of each user's agent against the five
// baselines (rows: users, then their mean), the cross-user matrix (rows: users as judges,
// columns: agents) and the learning curve (rule vs naive fine-tuning against M_L, per training
// size), each cell mean ± std in % over the seeds that finished.
void agent_table(std::ostream& table, const SweepRecipe& recipe) {
  const auto summaries = finished_summaries(recipe);
  if (summaries.empty()) return;
  std::vector<std::string> users, baselines, sizes;
  std::map<std::string, std::string> labels;
  std::map<std::pair<std::string, std::string>, std::vector<double>> win, cross, curve;
  std::vector<double> wall;
  int64_t diagonal = 0;
  for (const nlohmann::json* s : summaries) {
    // The table's order (summary.json's objects are written with sorted keys).
    for (const auto& key : s->value("baseline_order", nlohmann::json::array()))
      add_name(baselines, key.get<std::string>());
    for (const auto& [key, label] : s->at("baselines").items()) {
      add_name(baselines, key);
      labels[key] = label.get<std::string>();
    }
    for (const auto& [user, rates] : s->at("win_rates").items()) {
      add_name(users, user);
      for (const auto& [key, rate] : rates.items())
        if (rate.is_number()) win[{user, key}].push_back(100 * rate.get<double>());
    }
    for (const auto& [key, rate] : s->at("win_rates_mean").items())
      if (rate.is_number()) win[{"mean", key}].push_back(100 * rate.get<double>());
    for (const auto& [judge, row] : s->at("cross_user").at("win_rate").items())
      for (const auto& [agent, rate] : row.items())
        if (rate.is_number()) cross[{judge, agent}].push_back(100 * rate.get<double>());
    diagonal += s->at("cross_user").value("diagonal_is_row_max", false);
    for (const auto& [user, kinds] : s->at("curves").items())
      for (const auto& [kind, by_size] : kinds.items())
        for (const auto& [size, rate] : by_size.items()) {
          add_name(sizes, size);
          if (rate.is_number()) curve[{kind, size}].push_back(100 * rate.get<double>());
        }
    wall.push_back(s->at("wall_seconds").get<double>());
  }
  std::sort(sizes.begin(), sizes.end(), [](const std::string& a, const std::string& b) {
    return std::stoll(a) < std::stoll(b);
  });
  const auto cell = [](const auto& cells, const std::pair<std::string, std::string>& key) {
    const auto it = cells.find(key);
    return it == cells.end() ? std::string("–") : mean_std(stats_of(it->second), 1);
  };
  std::vector<std::string> baseline_columns;
  for (const auto& key : baselines)
    baseline_columns.push_back("vs " + labels[key]);
  write_markdown_header(table, file_name(recipe.recipe) + ": user", baseline_columns);
  std::vector<std::string> rows = users;
  rows.push_back("mean");
  for (const auto& user : rows) {
    table << "| " << user << " |";
    for (const auto& key : baselines)
      table << " " << cell(win, {user, key}) << " |";
    table << "\n";
  }
  table << "\nCross-user matrix (win % against M_L alone; rows: users judging, columns: agents); "
           "each agent best on its own user in "
        << diagonal << "/" << summaries.size() << " seeds.\n\n";
  write_markdown_header(table, "judge \\ agent", users);
  for (const auto& judge : users) {
    table << "| " << judge << " |";
    for (const auto& agent : users)
      table << " " << cell(cross, {judge, agent}) << " |";
    table << "\n";
  }
  table << "\nLearning curve (win % against M_L alone, mean over users and seeds): rule "
           "fine-tuning (the agent) vs naive fine-tuning, by demonstrations per user.\n\n";
  std::vector<std::string> size_columns;
  for (const auto& size : sizes)
    size_columns.push_back("n = " + size);
  write_markdown_header(table, "method", size_columns);
  for (const std::string kind : {"rules", "naive"}) {
    table << "| " << (kind == "rules" ? "agent (rules)" : "naive fine-tune") << " |";
    for (const auto& size : sizes)
      table << " " << cell(curve, {kind, size}) << " |";
    table << "\n";
  }
  const size_t failed = recipe.runs.size() - summaries.size();
  table << "\n"
        << of_seeds(summaries.size(), recipe.runs.size(), failed) << "; "
        << fixed(stats_of(wall).mean, 0)
        << " s per run. Judged by each user's oracle, which also picked the user's "
           "demonstrations (for every method alike).\n";
}

}  // namespace

void check_sweep_summary(const std::string& stage, const nlohmann::json& summary) {
  const auto need = [&](const char* key, bool ok) {
    if (!ok)
      throw Error("sweep", std::string("summary.json: no usable \"") + key + "\" (a " + stage +
                               " run's summary needs it)");
  };
  const auto number = [&](const char* key) {
    need(key, summary.contains(key) && summary[key].is_number());
  };
  need("summary", summary.is_object());
  number("wall_seconds");
  if (stage == "dpo") {
    need("users", summary.contains("users") && summary["users"].is_array());
    for (const auto& user : summary["users"])
      need("users", user.is_string());
    if (summary.contains("cross_user")) {
      const auto& c = summary["cross_user"];
      bool ok = c.is_object() && c.contains("adapters") && c["adapters"].is_array() &&
                c.contains("judges") && c["judges"].is_array() && c.contains("win_rate") &&
                c["win_rate"].is_array() && c["win_rate"].size() == c["adapters"].size();
      for (size_t i = 0; ok && i < c["adapters"].size(); ++i) {
        ok = c["adapters"][i].is_string() && c["win_rate"][i].is_array() &&
             c["win_rate"][i].size() == c["judges"].size();
        for (size_t j = 0; ok && j < c["judges"].size(); ++j)
          ok = c["judges"][j].is_string() && c["win_rate"][i][j].is_number();
      }
      need("cross_user", ok);
    }
    return;
  }
  if (stage == "chain") {
    bool ok = summary.contains("table") && summary["table"].is_array();
    for (size_t i = 0; ok && i < summary["table"].size(); ++i) {
      const auto& row = summary["table"][i];
      ok = row.is_object() && row.contains("method") && row["method"].is_string() &&
           row.contains("win_rate") && row["win_rate"].is_object();
      if (!ok) break;
      for (const auto& [user, rate] : row["win_rate"].items())
        ok = ok && rate.is_number();
    }
    need("table", ok);
    return;
  }
  if (stage == "agent") {
    for (const char* key : {"win_rates", "win_rates_mean", "baselines", "curves", "cross_user"})
      need(key, summary.contains(key) && summary[key].is_object());
    need("cross_user", summary["cross_user"].contains("win_rate") &&
                           summary["cross_user"]["win_rate"].is_object());
    return;
  }
  if (stage == "elicit") {
    need("questions", summary.contains("questions") && summary["questions"].is_array());
    need("users", summary.contains("users") && summary["users"].is_object());
    const std::string metric = summary.value("metric", std::string("accuracy"));
    need("metric", metric == "accuracy" || metric == "auc");
    for (const auto& [user, u] : summary["users"].items()) {
      need("users", u.is_object() && u.contains("default_" + metric) &&
                        u["default_" + metric].is_number() && u.contains("selectors") &&
                        u["selectors"].is_object());
      for (const auto& [selector, v] : u["selectors"].items())
        need("users", v.is_object() && v.contains(metric) && v[metric].is_object());
    }
    return;
  }
  number("accuracy");
  need("converged", summary.contains("converged") && summary["converged"].is_boolean());
  if (summary["converged"].get<bool>()) {
    number("converge_step");
    number("converge_epoch");
  }
}

std::string sweep_tables(const std::vector<SweepRecipe>& recipes) {
  std::ostringstream reward, dpo, cross, elicit, chain, agent;
  std::vector<std::string> ks;  // the elicit table's columns, in first-seen order
  for (const auto& recipe : recipes) {
    if (recipe.stage == "dpo") {
      dpo_rows(dpo, recipe);
      cross_user_table(cross, recipe);
    } else if (recipe.stage == "elicit") {
      elicit_rows(elicit, recipe, ks);
    } else if (recipe.stage == "chain") {
      if (!chain.str().empty()) chain << "\n";
      chain_table(chain, recipe);
    } else if (recipe.stage == "agent") {
      if (!agent.str().empty()) agent << "\n";
      agent_table(agent, recipe);
    } else {
      reward_row(reward, recipe);
    }
  }
  std::string out;
  if (!reward.str().empty())
    out +=
        "| recipe | variant | accuracy (mean ± std) | converged | steps to converge | epochs to "
        "converge | wall time per run |\n|---|---|---|---|---|---|---|\n" +
        reward.str();
  if (!dpo.str().empty()) {
    if (!out.empty()) out += "\n";
    out +=
        "| recipe | user | win rate vs base (mean ± std) | held-out reward accuracy (mean ± std) "
        "| held-out reward margin (mean ± std) | seeds finished | wall time per run |\n"
        "|---|---|---|---|---|---|---|\n" +
        dpo.str() + cross.str();
  }
  if (!elicit.str().empty()) {
    if (!out.empty()) out += "\n";
    out += "| recipe | user | selector | metric |";
    for (const auto& k : ks)
      out += " % after " + k + " (mean ± std) |";
    out += " seeds finished | wall time per run |\n|---|---|---|---|";
    for (size_t i = 0; i < ks.size(); ++i)
      out += "---|";
    out += "---|---|\n" + elicit.str();
  }
  if (!chain.str().empty()) {
    if (!out.empty()) out += "\n";
    out += chain.str();
  }
  if (!agent.str().empty()) {
    if (!out.empty()) out += "\n";
    out += agent.str();
  }
  return out;
}

int sweep_command(const std::vector<std::string>& args) {
  CLI::App app{
      "Run recipes over several seeds and print the accuracy / convergence table (reward "
      "recipes) or the per-user win-rate table (dpo recipes).",
      args.at(0)};
  std::vector<std::string> items;
  std::string seeds_text = "0,1,2";
  std::string table_file;
  app.add_option("items", items, "recipe files, then key=value overrides applied to every run")
      ->required();
  app.add_option("--seeds", seeds_text, "comma-separated seeds (default 0,1,2)");
  app.add_option("--table", table_file, "also write the Markdown tables to this file");
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

  bool all_ok = true;
  // Validate every recipe before any seed runs. Recipes that share an output_dir (e.g. one
  // output_dir=... override for all) each get a subdirectory named after the recipe file.
  std::vector<fs::path> outs;
  std::vector<SweepRecipe> results;
  for (const auto& recipe : recipes) {
    const std::string text = read_file(recipe);
    const Stage& stage = recipe_stage(text, recipe, overrides);
    outs.push_back(stage.resolve(text, recipe, overrides).get<std::string>("output_dir"));
    results.push_back({recipe, stage.name, {}});
  }
  const std::vector<fs::path> given = outs;
  for (size_t i = 0; i < recipes.size(); ++i) {
    if (std::count(given.begin(), given.end(), given[i]) > 1)
      outs[i] = given[i] / fs::path(recipes[i]).stem();
  }
  for (size_t r = 0; r < recipes.size(); ++r) {
    const std::string& recipe = recipes[r];
    const fs::path out = outs[r];
    SweepRecipe& result = results[r];
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
        check_sweep_summary(result.stage, summary);
        result.runs.push_back({{"seed", seed}, {"summary", summary}});
      } catch (const std::exception& e) {
        std::cerr << "[sweep] " << recipe << " seed " << seed << " failed: " << e.what() << "\n";
        result.runs.push_back({{"seed", seed}, {"error", e.what()}});
        all_ok = false;
      }
    }
    fs::create_directories(out);
    write_file_atomic(out / "sweep.json", nlohmann::json({{"recipe", recipe},
                                                          {"stage", result.stage},
                                                          {"overrides", overrides},
                                                          {"runs", result.runs}})
                                                  .dump(2) +
                                              "\n");
  }
  const std::string tables = sweep_tables(results);
  std::cout << tables << std::flush;
  if (!table_file.empty()) write_file_atomic(table_file, tables);
  return all_ok ? 0 : 1;
}

}  // namespace tailor::cli
