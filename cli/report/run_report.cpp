#include "cli/report/run_report.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <sstream>

#include "cli/report/svg.h"
#include "common/atomic_file.h"
#include "common/error.h"

namespace tailor::report {
namespace fs = std::filesystem;
namespace {

const char* const kOverall = "#000000";  // the all-users series in per-user charts

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The recipe's top-level `stage`.
std::string read_stage(const fs::path& recipe) {
  try {
    const YAML::Node root = YAML::Load(read_file(recipe));
    if (!root.IsMap() || !root["stage"] || !root["stage"].IsScalar())
      throw Error("report", recipe.string() + ": no top-level `stage` key");
    return root["stage"].as<std::string>();
  } catch (const YAML::Exception& e) {
    throw Error("report", recipe.string() + ": not valid YAML: " + e.what());
  }
}

// What a run without recipe.yaml most likely is, from its metric keys.
std::string guess_stage(const MetricsLog& log) {
  if (!users_in(log, "loss/", "").empty()) return "agent";  // loss/<adapter>: agent only
  if (!users_in(log, "users/", "/loss").empty()) return "dpo";
  for (const auto& r : log.records)
    if (r.values.contains("eval/accuracy")) return "reward";
  return "sft";
}

// Per-user charts: the all-users key (if any record has it) in black, then one series per user in
// that user's colour (the same in every figure).
LineChart per_user_chart(const MetricsLog& log, const std::string& title,
                         const std::string& y_label, const std::string& overall_key,
                         const std::vector<std::string>& users, const std::string& prefix,
                         const std::string& suffix) {
  LineChart chart{title, "step", y_label, {}};
  if (!overall_key.empty()) {
    Series all = metric_series(log, overall_key, "all users");
    if (!all.x.empty()) {
      all.colour = kOverall;
      all.width = 2.6;
      chart.series.push_back(std::move(all));
    }
  }
  for (size_t u = 0; u < users.size(); ++u) {
    Series s = metric_series(log, prefix + users[u] + suffix, users[u]);
    s.colour = series_colour(u);
    chart.series.push_back(std::move(s));
  }
  return chart;
}

class Builder {
 public:
  explicit Builder(RunReport& report) : report_(report) {}

  // Adds the chart as `file`, or a note when it has nothing to draw.
  void line(const std::string& file, const LineChart& chart, const std::string& missing) {
    if (!has_points(chart)) {
      report_.notes.push_back(chart.title + ": skipped, " + missing);
      return;
    }
    report_.figures.push_back({file, chart.title, line_chart(chart)});
  }
  void add(const std::string& file, const std::string& title, std::string svg) {
    report_.figures.push_back({file, title, std::move(svg)});
  }
  void note(const std::string& text) { report_.notes.push_back(text); }

 private:
  RunReport& report_;
};

void sft_figures(const MetricsLog& log, Builder& out) {
  LineChart chart{"Loss", "step", "loss", {}};
  Series train = metric_series(log, "loss", "loss");
  Series eval = metric_series(log, "eval_loss", "eval_loss");
  if (!train.x.empty()) chart.series.push_back(train);
  if (!eval.x.empty()) chart.series.push_back(eval);
  if (eval.x.empty()) out.note("Loss: no eval_loss records (evaluation off or not reached yet)");
  out.line("loss.svg", chart, "metrics.jsonl has no loss or eval_loss values");
}

void reward_figures(const MetricsLog& log, Builder& out) {
  LineChart loss{"Training loss", "step", "loss", {metric_series(log, "loss", "loss")}};
  out.line("loss.svg", loss, "metrics.jsonl has no loss values");
  const auto users = users_in(log, "eval/", "/accuracy");
  out.line("eval_accuracy.svg",
           per_user_chart(log, "Held-out pair accuracy", "accuracy", "eval/accuracy", users,
                          "eval/", "/accuracy"),
           "no eval/accuracy records (evaluation not reached yet)");
}

void dpo_figures(const MetricsLog& log, const nlohmann::json* summary, Builder& out) {
  const auto users = users_in(log, "users/", "/loss");
  if (users.empty()) out.note("metrics.jsonl has no users/<user>/loss keys: no per-user series");
  out.line("loss.svg", per_user_chart(log, "DPO loss", "loss", "loss", users, "users/", "/loss"),
           "metrics.jsonl has no loss values");
  out.line("reward_accuracy.svg",
           per_user_chart(log, "Reward accuracy (chosen > rejected)", "accuracy",
                          "rewards/accuracies", users, "users/", "/rewards/accuracies"),
           "no rewards/accuracies values");
  out.line("reward_margins.svg",
           per_user_chart(log, "Reward margin (chosen - rejected)", "margin", "rewards/margins",
                          users, "users/", "/rewards/margins"),
           "no rewards/margins values");

  if (summary == nullptr) {
    out.note("summary.json not found (the run has not finished): win-rate figures skipped");
    return;
  }
  if (summary->contains("win_rate") && (*summary)["win_rate"].is_object() &&
      !(*summary)["win_rate"].empty()) {
    BarChart bars;
    bars.title = "Win rate against the base model, judged by each user";
    bars.x_label = "user";
    bars.y_label = "win rate";
    bars.series_name = "win rate (ties = 1/2)";
    bars.has_reference = true;
    bars.reference = 0.5;
    bars.reference_name = "0.5 = no better than base";
    for (const auto& [user, w] : (*summary)["win_rate"].items()) {
      bars.labels.push_back(user);
      const auto rate = w.is_object() ? w.find("rate") : w.end();
      bars.values.push_back(rate != w.end() && rate->is_number() ? rate->get<double>() : NAN);
    }
    out.add("win_rate.svg", bars.title, bar_chart(bars));
  } else {
    out.note("summary.json has no win_rate (eval.win_rate off?): win-rate bar chart skipped");
  }
  const auto cross = summary->find("cross_user");
  if (cross == summary->end()) {
    out.note("summary.json has no cross_user (eval.cross_user off): heatmap skipped");
    return;
  }
  Heatmap map;
  map.title = "Cross-user win rate";
  map.row_title = "adapter";
  map.column_title = "judge";
  try {
    map.row_labels = cross->at("adapters").get<std::vector<std::string>>();
    map.column_labels = cross->at("judges").get<std::vector<std::string>>();
    for (const auto& row : cross->at("win_rate")) {
      std::vector<double> values;
      for (const auto& v : row)
        values.push_back(v.is_number() ? v.get<double>() : NAN);
      map.values.push_back(std::move(values));
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error("report",
                "summary.json: cross_user: expected adapters, judges (names) and "
                "win_rate (rows of numbers): " +
                    std::string(e.what()));
  }
  if (map.values.size() != map.row_labels.size()) {
    throw Error("report", "summary.json: cross_user: " + std::to_string(map.values.size()) +
                              " win_rate rows for " + std::to_string(map.row_labels.size()) +
                              " adapters");
  }
  out.add("cross_user_win_rate.svg", map.title, heatmap(map));
}

std::string html_number(const nlohmann::json& v) {
  if (v.is_number_float()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4g", v.get<double>());
    return buf;
  }
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// Elicitation. 20 Questions (seed 000, Table 1 and Figure 3): per user, the held-out accuracy of
// the posterior mean after 0..K answers, one line per selector, and the unpersonalised model
// (the mean of the heads) as a dashed line. PReF (seed 004, Figure 3): the same with the AUC of
// lambda, and the mean over users of each selector's curve. Plus the training loss (the
// multi-reward model's, or PReF's refinement's).
void elicit_figures(const MetricsLog& log, const nlohmann::json* summary, Builder& out) {
  const bool pref = summary != nullptr && summary->value("method", std::string()) == "pref";
  const std::string metric = pref ? "auc" : "accuracy", label = pref ? "AUC" : "accuracy";
  LineChart loss{pref ? "PReF refinement: training loss" : "Multi-reward model: training loss",
                 "step",
                 "loss",
                 {metric_series(log, "loss", "loss")}};
  out.line("loss.svg", loss, "metrics.jsonl has no loss values");
  if (summary == nullptr) {
    out.note("summary.json not found (the run has not finished): " + label + " figures skipped");
    return;
  }
  if (!summary->contains("users") || !(*summary)["users"].is_object()) {
    out.note("summary.json has no users: " + label + " figures skipped");
    return;
  }
  const auto curve_series = [](const std::string& name, const nlohmann::json& curve) {
    Series series{name, {}, {}, ""};
    for (size_t k = 0; k < curve.size(); ++k) {
      series.x.push_back(static_cast<double>(k));
      series.y.push_back(curve[k].is_number() ? curve[k].get<double>() : NAN);
    }
    return series;
  };
  const auto* means = summary->contains("selector_means") ? &(*summary)["selector_means"] : nullptr;
  if (pref && means && means->contains("mean_curve") && (*means)["mean_curve"].is_object()) {
    LineChart chart{"Held-out AUC after K answers, mean of " +
                        std::to_string((*summary)["users"].size()) + " new users",
                    "answers K",
                    "AUC",
                    {}};
    for (const auto& [selector, curve] : (*means)["mean_curve"].items()) {
      if (!curve.is_array()) continue;
      chart.series.push_back(curve_series(selector, curve));
      chart.series.back().colour = series_colour(chart.series.size() - 1);
    }
    out.line("auc_mean.svg", chart, "summary.json has no mean curves");
  }
  for (const auto& [user, u] : (*summary)["users"].items()) {
    LineChart chart{
        "Held-out " + label + " of " + user + " after K answers", "answers K", label, {}};
    size_t longest = 0;
    if (u.contains("selectors") && u["selectors"].is_object()) {
      for (const auto& [selector, s] : u["selectors"].items()) {
        if (!s.contains("curve") || !s["curve"].is_array()) continue;
        Series series = curve_series(selector, s["curve"]);
        longest = std::max(longest, series.x.size());
        series.colour = series_colour(chart.series.size());
        chart.series.push_back(std::move(series));
      }
    }
    const std::string default_key = "default_" + metric;
    if (u.contains(default_key) && u[default_key].is_number() && longest > 1) {
      Series flat{pref ? "default (mean training user)" : "default (mean of heads)",
                  {0.0, static_cast<double>(longest - 1)},
                  {},
                  "#777777"};
      flat.y.assign(2, u[default_key].get<double>());
      flat.dashed = true;
      chart.series.push_back(std::move(flat));
    }
    out.line(metric + "_" + user + ".svg", chart, "summary.json has no curve for " + user);
  }
}

// The baselines of the agent stage (seed 002), in the order of its table.
const std::vector<std::string>& agent_baseline_order() {
  static const std::vector<std::string> order = {"small", "large", "few_shot", "naive",
                                                 "no_baseline"};
  return order;
}

double json_rate(const nlohmann::json& v) {
  return v.is_number() ? v.get<double>() : NAN;
}

// Preference agents (seed 002): the training loss of each user's rule fine-tune against its naive
// fine-tune, the mean win rate against each baseline, the cross-user matrix and the learning
// curve (win rate against M_L alone vs the number of demonstrations).
void agent_figures(const MetricsLog& log, const nlohmann::json* summary, Builder& out) {
  // loss/<adapter> keys; the users are the adapters without an "@<variant>".
  std::vector<std::string> users;
  for (const auto& adapter : users_in(log, "loss/", ""))
    if (adapter.find('@') == std::string::npos) users.push_back(adapter);
  if (users.empty()) out.note("metrics.jsonl has no loss/<user> keys: no per-user loss series");
  LineChart loss{
      "Training loss: rule fine-tuning (solid) vs naive fine-tuning (dashed)", "step", "loss", {}};
  for (size_t u = 0; u < users.size(); ++u) {
    Series rules = metric_series(log, "loss/" + users[u], users[u] + " rules");
    Series naive = metric_series(log, "loss/" + users[u] + "@naive", users[u] + " naive");
    rules.colour = naive.colour = series_colour(u);
    naive.dashed = true;
    if (!rules.x.empty()) loss.series.push_back(std::move(rules));
    if (!naive.x.empty()) loss.series.push_back(std::move(naive));
  }
  out.line("agent_loss.svg", loss, "metrics.jsonl has no loss/<user> values");

  if (summary == nullptr) {
    out.note(
        "summary.json not found (the run has not finished): win-rate, cross-user and "
        "learning-curve figures skipped");
    return;
  }
  std::vector<std::string> summary_users;
  if (summary->contains("users") && (*summary)["users"].is_array()) {
    for (const auto& u : (*summary)["users"])
      if (u.is_string()) summary_users.push_back(u.get<std::string>());
  }

  // Mean win rate per baseline, in the seed's order (then any other baseline the summary has).
  const auto means = summary->find("win_rates_mean");
  if (means != summary->end() && means->is_object() && !means->empty()) {
    BarChart bars;
    bars.title = "Win rate of the agents against each baseline (mean over users)";
    bars.x_label = "baseline";
    bars.y_label = "win rate (ties = 1/2)";
    bars.series_name = "mean over users";
    bars.has_reference = true;
    bars.reference = 0.5;
    bars.reference_name = "0.5 = tie with baseline";  // short: the legend is ~25 characters
    std::vector<std::string> keys;
    for (const auto& key : agent_baseline_order())
      if (means->contains(key)) keys.push_back(key);
    for (const auto& item : means->items())
      if (std::find(keys.begin(), keys.end(), item.key()) == keys.end()) keys.push_back(item.key());
    for (const auto& key : keys) {
      bars.labels.push_back(key);
      bars.values.push_back(json_rate((*means)[key]));
    }
    out.add("agent_win_rates.svg", bars.title, bar_chart(bars));
  } else {
    out.note("summary.json has no win_rates_mean: win-rate bar chart skipped");
  }

  // Cross-user matrix: win_rate[judge][agent], each against M_L alone.
  const auto cross = summary->find("cross_user");
  const nlohmann::json* matrix = nullptr;
  if (cross != summary->end() && cross->is_object() && cross->contains("win_rate") &&
      (*cross)["win_rate"].is_object() && !(*cross)["win_rate"].empty()) {
    matrix = &(*cross)["win_rate"];
  }
  if (matrix != nullptr) {
    Heatmap map;
    map.title = "Cross-user win rate against M_L alone (rows: users judging, columns: agents)";
    map.row_title = "user judging";
    map.column_title = "agent";
    std::vector<std::string> judges = summary_users;
    if (judges.empty())
      for (const auto& item : matrix->items())
        judges.push_back(item.key());
    map.row_labels = judges;
    map.column_labels = judges;
    for (const auto& judge : judges) {
      std::vector<double> row;
      const auto r = matrix->find(judge);
      for (const auto& agent : judges) {
        const bool has = r != matrix->end() && r->is_object() && r->contains(agent);
        row.push_back(has ? json_rate((*r)[agent]) : NAN);
      }
      map.values.push_back(std::move(row));
    }
    out.add("agent_cross_user.svg", map.title, heatmap(map));
  } else {
    out.note("summary.json has no cross_user.win_rate: cross-user heatmap skipped");
  }

  // Learning curve: per method, the mean over users (those with a number there) at each size.
  const auto curves = summary->find("curves");
  if (curves == summary->end() || !curves->is_object() || curves->empty()) {
    out.note("summary.json has no curves: learning-curve figure skipped");
    return;
  }
  LineChart chart{"Win rate against M_L alone vs demonstrations, mean of " +
                      std::to_string(curves->size()) + " users",
                  "demonstrations per user",
                  "win rate against M_L alone",
                  {}};
  const std::pair<const char*, const char*> methods[] = {{"rules", "rule fine-tuning (agent)"},
                                                         {"naive", "naive fine-tuning"}};
  double x_lo = INFINITY, x_hi = -INFINITY;
  for (const auto& [key, name] : methods) {
    std::map<double, std::pair<double, int>> sums;  // size -> (sum, count)
    for (const auto& [user, c] : curves->items()) {
      if (!c.is_object() || !c.contains(key) || !c[key].is_object()) continue;
      for (const auto& [size, v] : c[key].items()) {
        char* end = nullptr;
        const double n = std::strtod(size.c_str(), &end);
        if (end == size.c_str() || *end != '\0' || !std::isfinite(n)) continue;
        auto& [sum, count] = sums[n];
        if (v.is_number() && std::isfinite(v.get<double>())) {
          sum += v.get<double>();
          ++count;
        }
      }
    }
    Series series{name, {}, {}, series_colour(chart.series.size())};
    for (const auto& [n, sc] : sums) {
      series.x.push_back(n);
      series.y.push_back(sc.second > 0 ? sc.first / sc.second : NAN);
      x_lo = std::min(x_lo, n);
      x_hi = std::max(x_hi, n);
    }
    chart.series.push_back(std::move(series));
  }
  if (has_points(chart) && x_lo < x_hi) {
    Series even{"0.5 = tie with M_L alone", {x_lo, x_hi}, {0.5, 0.5}, "#777777"};
    even.dashed = true;
    chart.series.push_back(std::move(even));
  }
  out.line("agent_learning_curve.svg", chart, "summary.json's curves have no win rates");
}

// The summary's scalar entries, and for DPO its win-rate table.
std::string summary_tables(const nlohmann::json& summary) {
  std::ostringstream html;
  html << "<h2>summary.json</h2>\n<table class=\"summary\">\n";
  for (const auto& [key, v] : summary.items()) {
    if (v.is_structured()) continue;
    html << "<tr><th>" << xml_escape(key) << "</th><td>" << xml_escape(html_number(v))
         << "</td></tr>\n";
  }
  html << "</table>\n";
  if (summary.contains("win_rate") && summary["win_rate"].is_object()) {
    html << "<h3>Win rate against the base</h3>\n<table class=\"win-rate\">\n"
         << "<tr><th>user</th><th>wins</th><th>ties</th><th>losses</th><th>rate</th></tr>\n";
    for (const auto& [user, w] : summary["win_rate"].items()) {
      html << "<tr><th>" << xml_escape(user) << "</th>";
      for (const char* k : {"wins", "ties", "losses", "rate"})
        html << "<td>" << (w.contains(k) ? xml_escape(html_number(w[k])) : "") << "</td>";
      html << "</tr>\n";
    }
    html << "</table>\n";
  }
  return html.str();
}

std::string index_html(const fs::path& run_dir, const MetricsLog& log, const RunReport& report,
                       const nlohmann::json* summary) {
  std::ostringstream html;
  const std::string name = run_dir.filename().empty() ? run_dir.parent_path().filename().string()
                                                      : run_dir.filename().string();
  html << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
       << "<title>tailor report: " << xml_escape(name) << "</title>\n"
       << "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}"
          "figure{margin:1.5em 0}img{max-width:100%;border:1px solid #ddd}"
          "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:2px 8px}"
          "td{text-align:right}th{text-align:left}.notes li{color:#8a4b00}</style>\n"
       << "</head>\n<body>\n<h1>tailor report: " << xml_escape(name) << "</h1>\n"
       << "<p>Run directory <code>" << xml_escape(run_dir.string()) << "</code>, stage <b>"
       << xml_escape(report.stage) << "</b>, " << log.records.size() << " metrics records";
  if (!log.records.empty()) {
    double lo = log.records.front().step, hi = lo;
    for (const auto& r : log.records)
      lo = std::min(lo, r.step), hi = std::max(hi, r.step);
    html << " (steps " << html_number(lo) << "&ndash;" << html_number(hi) << ")";
  }
  html << ".</p>\n";
  if (!report.notes.empty()) {
    html << "<h2>Notes</h2>\n<ul class=\"notes\">\n";
    for (const auto& n : report.notes)
      html << "<li>" << xml_escape(n) << "</li>\n";
    html << "</ul>\n";
  }
  html << "<h2>Figures</h2>\n";
  if (report.figures.empty()) html << "<p>No figures: nothing to draw yet.</p>\n";
  for (const auto& f : report.figures) {
    html << "<figure><img src=\"" << xml_escape(f.file) << "\" alt=\"" << xml_escape(f.title)
         << "\"><figcaption>" << xml_escape(f.title) << " (<a href=\"" << xml_escape(f.file)
         << "\">" << xml_escape(f.file) << "</a>)</figcaption></figure>\n";
  }
  if (summary != nullptr) html << summary_tables(*summary);
  html << "</body>\n</html>\n";
  return html.str();
}

}  // namespace

MetricsLog read_metrics(const fs::path& path) {
  if (!fs::is_regular_file(path)) {
    throw Error("report", path.string() + ": not found (a run directory has metrics.jsonl)");
  }
  MetricsLog log;
  log.path = path;
  const std::string text = read_file(path);
  size_t pos = 0;
  for (int64_t line_no = 1; pos < text.size(); ++line_no) {
    const size_t end = text.find('\n', pos);
    const bool terminated = end != std::string::npos;
    const std::string line = text.substr(pos, terminated ? end - pos : std::string::npos);
    pos = terminated ? end + 1 : text.size();
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path.string() + ":" + std::to_string(line_no);
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      if (!terminated) {
        log.notes.push_back(where + ": incomplete last line skipped (run still writing?)");
        continue;
      }
      throw Error("report", where + ": malformed JSON: " + e.what());
    }
    if (!record.is_object()) throw Error("report", where + ": expected a JSON object");
    const auto step = record.find("step");
    if (step == record.end() || !step->is_number()) {
      throw Error("report", where + ": no numeric \"step\"");
    }
    log.records.push_back({line_no, step->get<double>(), std::move(record)});
  }
  return log;
}

Series metric_series(const MetricsLog& log, const std::string& key, const std::string& name) {
  Series s;
  s.name = name;
  for (const auto& r : log.records) {
    const auto it = r.values.find(key);
    if (it == r.values.end() || !(it->is_number() || it->is_null())) continue;
    s.x.push_back(r.step);
    s.y.push_back(it->is_null() ? NAN : it->get<double>());
  }
  return s;
}

std::vector<std::string> users_in(const MetricsLog& log, const std::string& prefix,
                                  const std::string& suffix) {
  std::vector<std::string> users;
  for (const auto& r : log.records) {
    for (const auto& item : r.values.items()) {
      const std::string& key = item.key();
      if (key.size() <= prefix.size() + suffix.size() ||
          key.compare(0, prefix.size(), prefix) != 0 || !ends_with(key, suffix)) {
        continue;
      }
      std::string user = key.substr(prefix.size(), key.size() - prefix.size() - suffix.size());
      if (std::find(users.begin(), users.end(), user) == users.end()) users.push_back(user);
    }
  }
  return users;
}

RunReport build_report(const fs::path& run_dir) {
  if (!fs::is_directory(run_dir)) {
    throw Error("report", run_dir.string() + ": run directory not found");
  }
  const MetricsLog log = read_metrics(run_dir / "metrics.jsonl");
  RunReport report;
  report.notes = log.notes;
  const fs::path recipe = run_dir / "recipe.yaml";
  if (fs::exists(recipe)) {
    report.stage = read_stage(recipe);
  } else {
    report.stage = guess_stage(log);
    report.notes.push_back(recipe.string() + " not found: stage guessed from the metric keys (" +
                           report.stage + ")");
  }
  std::optional<nlohmann::json> summary;
  const fs::path summary_path = run_dir / "summary.json";
  if (fs::exists(summary_path)) {
    try {
      summary = nlohmann::json::parse(read_file(summary_path));
    } catch (const nlohmann::json::exception& e) {
      throw Error("report", summary_path.string() + ": malformed JSON: " + e.what());
    }
    if (!summary->is_object())
      throw Error("report", summary_path.string() + ": expected an object");
  }

  Builder out(report);
  if (report.stage == "reward") {
    reward_figures(log, out);
  } else if (report.stage == "dpo") {
    dpo_figures(log, summary ? &*summary : nullptr, out);
  } else if (report.stage == "elicit") {
    elicit_figures(log, summary ? &*summary : nullptr, out);
  } else if (report.stage == "agent") {
    agent_figures(log, summary ? &*summary : nullptr, out);
  } else {
    if (report.stage != "sft") {
      out.note("stage \"" + report.stage + "\" has no figures of its own: drawing the loss only");
    }
    sft_figures(log, out);
  }
  report.index_html = index_html(run_dir, log, report, summary ? &*summary : nullptr);
  return report;
}

WrittenReport write_report(const fs::path& run_dir, const fs::path& out_dir) {
  const RunReport report = build_report(run_dir);
  fs::create_directories(out_dir);
  WrittenReport written;
  written.notes = report.notes;
  for (const auto& f : report.figures) {
    write_file_atomic(out_dir / f.file, f.svg);
    written.files.push_back(out_dir / f.file);
  }
  write_file_atomic(out_dir / "index.html", report.index_html);
  written.files.push_back(out_dir / "index.html");
  return written;
}

}  // namespace tailor::report
