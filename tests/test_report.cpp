// `tailor report`: synthetic run directories in a temp dir, then the SVGs are read back and
// checked against the input (point counts, pixel positions from charts.h's documented mapping,
// legends, bar heights, heatmap cells), plus the error messages.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/report/charts.h"
#include "cli/report/run_report.h"
#include "cli/report/svg.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "test_support.h"

namespace fs = std::filesystem;
using nlohmann::json;
using tailor::report::Layout;

namespace {

// A fresh directory for one test, removed at the end.
struct ReportDir {
  fs::path path;
  explicit ReportDir(const std::string& name)
      : path(tailor::test::fresh_process_dir("report_" + name)) {}
  ~ReportDir() { fs::remove_all(path); }
};

std::string unescape(std::string s) {
  const std::pair<const char*, const char*> entities[] = {
      {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"}, {"&amp;", "&"}};
  for (const auto& [from, to] : entities) {
    for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + 1))
      s.replace(p, std::string(from).size(), to);
  }
  return s;
}

struct Element {
  std::map<std::string, std::string> attrs;  // unescaped
  std::string text;                          // unescaped
};

// Every <tag ...> element of the document (self-closing or with text), in document order.
std::vector<Element> elements(const std::string& svg, const std::string& tag) {
  std::vector<Element> out;
  const std::regex element("<" + tag + "((?:\\s+[\\w:-]+=\"[^\"]*\")*)\\s*(?:/>|>([^<]*)</" + tag +
                           ">)");
  const std::regex attribute("([\\w:-]+)=\"([^\"]*)\"");
  for (std::sregex_iterator it(svg.begin(), svg.end(), element), end; it != end; ++it) {
    Element e;
    const std::string attrs = (*it)[1];
    for (std::sregex_iterator a(attrs.begin(), attrs.end(), attribute); a != end; ++a)
      e.attrs[(*a)[1]] = unescape((*a)[2]);
    e.text = unescape((*it)[2]);
    out.push_back(e);
  }
  return out;
}

std::vector<Element> with_class(const std::vector<Element>& all, const std::string& cls) {
  std::vector<Element> out;
  for (const auto& e : all)
    if (e.attrs.count("class") && e.attrs.at("class") == cls) out.push_back(e);
  return out;
}

using Points = std::vector<std::pair<double, double>>;

// The polylines of one series, each as its list of points.
std::vector<Points> series_lines(const std::string& svg, const std::string& name) {
  std::vector<Points> lines;
  for (const auto& e : with_class(elements(svg, "polyline"), "series")) {
    if (e.attrs.at("data-series") != name) continue;
    Points pts;
    std::istringstream in(e.attrs.at("points"));
    for (std::string pair; in >> pair;) {
      const size_t comma = pair.find(',');
      pts.emplace_back(std::stod(pair.substr(0, comma)), std::stod(pair.substr(comma + 1)));
    }
    lines.push_back(pts);
  }
  return lines;
}

// The one polyline of a series (throws, failing the test, if it has none or several).
Points single_line(const std::string& svg, const std::string& name) {
  const auto lines = series_lines(svg, name);
  if (lines.size() != 1) {
    throw std::runtime_error("series " + name + ": " + std::to_string(lines.size()) +
                             " polylines, expected 1");
  }
  return lines[0];
}

size_t point_count(const std::vector<Points>& lines) {
  size_t n = 0;
  for (const auto& l : lines)
    n += l.size();
  return n;
}

std::vector<std::string> legend(const std::string& svg) {
  std::vector<std::string> names;
  for (const auto& e : with_class(elements(svg, "text"), "legend"))
    names.push_back(e.text);
  return names;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

void write_metrics(const fs::path& dir, const std::vector<json>& records) {
  std::string text;
  for (const auto& r : records)
    text += r.dump() + "\n";
  tailor::write_file_atomic(dir / "metrics.jsonl", text);
}

// Expected pixel of (x, y) under the documented line-chart mapping for the given data domain.
double px(double x, double lo, double hi) {
  return Layout::plot_left + (x - lo) / (hi - lo) * Layout::plot_width;
}
double py(double y, double lo, double hi) {
  return Layout::plot_bottom - (y - lo) / (hi - lo) * Layout::plot_height;
}

constexpr double kPixel = 0.011;  // points are written with 2 decimals

// An SFT run: loss at steps 1..10 (one record also has a string value), eval_loss at 5 and 10,
// and sample records without either key.
std::vector<json> sft_records(std::vector<double>* loss, std::vector<double>* eval) {
  *loss = {3.2, 2.9, 2.7, 2.2, 2.4, 1.9, 1.7, 1.8, 1.5, 1.45};
  *eval = {2.5, 1.6};
  std::vector<json> records;
  for (int s = 1; s <= 10; ++s) {
    records.push_back({{"step", s}, {"time", 100.0 + s}, {"loss", (*loss)[s - 1]}, {"lr", 1e-3}});
    if (s == 5 || s == 10) {
      records.push_back({{"step", s}, {"time", 100.5 + s}, {"eval_loss", (*eval)[s / 5 - 1]}});
      records.push_back({{"step", s}, {"samples/exact_match", 0.5}, {"phase", "warmup"}});
    }
  }
  return records;
}

}  // namespace

TEST(ReportSvg, EscapesTextForXml) {
  EXPECT_EQ(tailor::report::xml_escape("a<b & \"c\" 'd'>"),
            "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;");
  tailor::report::LineChart chart{"T <&>", "step", "y", {}};
  chart.series.push_back({"u<1>&", {1, 2}, {1, 2}, "", 1.8, false});
  const std::string svg = tailor::report::line_chart(chart);
  EXPECT_EQ(svg.find("u<1>"), std::string::npos);
  EXPECT_NE(svg.find("u&lt;1&gt;&amp;"), std::string::npos);
  EXPECT_EQ(legend(svg), std::vector<std::string>{"u<1>&"});
}

TEST(ReportSvg, NiceTicksAreRoundAndInsideTheRange) {
  double step = 0;
  EXPECT_EQ(tailor::report::nice_ticks(0.13, 0.87, 5, false, &step).size(), 7u);  // 0.2 .. 0.8
  EXPECT_DOUBLE_EQ(step, 0.1);
  const auto ticks = tailor::report::nice_ticks(0.13, 0.87, 4, false, &step);
  EXPECT_DOUBLE_EQ(step, 0.2);
  ASSERT_EQ(ticks.size(), 4u);
  for (size_t i = 0; i < ticks.size(); ++i)
    EXPECT_NEAR(ticks[i], 0.2 * (i + 1), 1e-12);
  EXPECT_EQ(tailor::report::tick_label(ticks[0], step), "0.2");
  // Steps 1..3 on an integer axis: whole steps only.
  const auto steps = tailor::report::nice_ticks(1, 3, 6, true, &step);
  EXPECT_EQ(steps, (std::vector<double>{1, 2, 3}));
  // 0..2000 in 5: 0, 500, ..., 2000.
  const auto big = tailor::report::nice_ticks(0, 2000, 5, true, &step);
  EXPECT_EQ(big, (std::vector<double>{0, 500, 1000, 1500, 2000}));
  EXPECT_EQ(tailor::report::tick_label(1500, step), "1500");
  EXPECT_EQ(tailor::report::tick_label(-1e-17, 0.05), "0.00");  // never "-0.00"
  EXPECT_EQ(tailor::report::tick_label(0.15, 0.05), "0.15");
}

TEST(ReportSft, LossAndEvalLossCurvesMatchTheRecords) {
  ReportDir dir("sft");
  std::vector<double> loss, eval;
  write_metrics(dir.path, sft_records(&loss, &eval));
  tailor::write_file_atomic(dir.path / "recipe.yaml",
                            "# resolved\nstage: sft   # comment\nseed: 1\n");

  const auto written = tailor::report::write_report(dir.path, dir.path / "report");
  ASSERT_EQ(written.files.size(), 2u);
  EXPECT_EQ(written.files[0], dir.path / "report" / "loss.svg");
  EXPECT_EQ(written.files[1], dir.path / "report" / "index.html");
  for (const auto& entry : fs::directory_iterator(dir.path / "report"))  // no temporaries left
    EXPECT_TRUE(entry.path().filename() == "loss.svg" || entry.path().filename() == "index.html")
        << entry.path();

  const std::string svg = tailor::read_file(dir.path / "report" / "loss.svg");
  EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  const auto train = series_lines(svg, "loss");
  const auto held_out = series_lines(svg, "eval_loss");
  ASSERT_EQ(train.size(), 1u);
  ASSERT_EQ(held_out.size(), 1u);
  ASSERT_EQ(point_count(train), loss.size());
  ASSERT_EQ(point_count(held_out), eval.size());
  EXPECT_TRUE(contains(legend(svg), "loss"));
  EXPECT_TRUE(contains(legend(svg), "eval_loss"));

  // Domain: steps 1..10, values over both series.
  const double y_lo = 1.45, y_hi = 3.2;
  for (size_t i = 0; i < loss.size(); ++i) {
    EXPECT_NEAR(train[0][i].first, px(i + 1.0, 1, 10), kPixel) << "step " << i + 1;
    EXPECT_NEAR(train[0][i].second, py(loss[i], y_lo, y_hi), kPixel) << "step " << i + 1;
  }
  // The largest loss (step 1) is on the top edge, the smallest (step 10) on the bottom edge.
  EXPECT_NEAR(train[0].front().second, Layout::plot_top, kPixel);
  EXPECT_NEAR(train[0].front().first, Layout::plot_left, kPixel);
  EXPECT_NEAR(train[0].back().second, Layout::plot_bottom, kPixel);
  EXPECT_NEAR(train[0].back().first, Layout::plot_right, kPixel);
  EXPECT_NEAR(held_out[0][0].first, px(5, 1, 10), kPixel);
  EXPECT_NEAR(held_out[0][0].second, py(2.5, y_lo, y_hi), kPixel);
  EXPECT_NEAR(held_out[0][1].second, py(1.6, y_lo, y_hi), kPixel);

  // Tick labels are nice values inside the domain, each at its mapped height.
  const auto ticks = with_class(elements(svg, "text"), "tick");
  int y_ticks = 0;
  for (const auto& t : ticks) {
    if (t.attrs.at("text-anchor") != "end") continue;  // y-axis labels are right-aligned
    const double v = std::stod(t.text);
    EXPECT_GE(v, y_lo - 1e-9);
    EXPECT_LE(v, y_hi + 1e-9);
    EXPECT_NEAR(std::fmod(std::round(v * 100), 20), 0, 1e-9) << t.text;  // multiples of 0.2
    EXPECT_NEAR(std::stod(t.attrs.at("y")) - 4, py(v, y_lo, y_hi), kPixel);
    ++y_ticks;
  }
  EXPECT_GE(y_ticks, 4);

  const std::string html = tailor::read_file(dir.path / "report" / "index.html");
  EXPECT_NE(html.find("<img src=\"loss.svg\""), std::string::npos);
  EXPECT_NE(html.find("stage <b>sft</b>"), std::string::npos);
}

TEST(ReportSft, NullValueBreaksTheLine) {
  ReportDir dir("sft_null");
  write_metrics(dir.path, {{{"step", 1}, {"loss", 2.0}},
                           {{"step", 2}, {"loss", 1.5}},
                           {{"step", 3}, {"loss", 1.8}},
                           {{"step", 4}, {"loss", nullptr}},
                           {{"step", 5}, {"loss", 1.0}},
                           {{"step", 6}, {"loss", 1.2}},
                           {{"step", 7}, {"lr", 0.1}}});  // no loss: not a gap
  tailor::write_file_atomic(dir.path / "recipe.yaml", "stage: sft\n");
  const auto report = tailor::report::build_report(dir.path);
  ASSERT_EQ(report.figures.size(), 1u);
  const auto lines = series_lines(report.figures[0].svg, "loss");
  ASSERT_EQ(lines.size(), 2u);
  ASSERT_EQ(lines[0].size(), 3u);
  ASSERT_EQ(lines[1].size(), 2u);
  EXPECT_NEAR(lines[0][0].second, Layout::plot_top, kPixel);     // 2.0, the largest
  EXPECT_NEAR(lines[1][0].second, Layout::plot_bottom, kPixel);  // 1.0, the smallest
  EXPECT_NEAR(lines[1][0].first, px(5, 1, 6), kPixel);
  EXPECT_NEAR(lines[1][1].first, Layout::plot_right, kPixel);  // step 6 is the last with loss
  // No eval_loss records: noted.
  EXPECT_NE(report.index_html.find("no eval_loss records"), std::string::npos);
}

namespace {

const std::vector<std::string> kReportUsers = {"alice", "bob", "c<&>"};

// A DPO run: 6 logged training steps with the overall and per-user keys, 2 eval records.
void write_dpo_run(const fs::path& dir, bool with_summary) {
  tailor::write_file_atomic(dir / "recipe.yaml", "stage: dpo\nseed: 3\n");
  std::vector<json> records;
  for (int s = 1; s <= 6; ++s) {
    json r = {{"step", s * 10},
              {"time", 1.0 * s},
              {"loss", 0.7 - 0.05 * s},
              {"rewards/chosen", 0.1 * s},
              {"rewards/rejected", -0.1 * s},
              {"rewards/accuracies", 0.5 + 0.05 * s},
              {"rewards/margins", 0.2 * s},
              {"logps/chosen", -40.0},
              {"logps/rejected", -42.0},
              {"lr", 1e-4}};
    for (size_t u = 0; u < kReportUsers.size(); ++u) {
      const std::string p = "users/" + kReportUsers[u] + "/";
      r[p + "loss"] = 0.69 - 0.02 * s * (u + 1);
      r[p + "rewards/accuracies"] = std::min(1.0, 0.4 + 0.1 * s + 0.02 * u);
      r[p + "rewards/margins"] = 0.1 * s * (u + 1);
      r[p + "grad_norm"] = 1.0;
    }
    records.push_back(r);
    if (s % 3 == 0) {
      json e = {{"step", s * 10}};
      for (const auto& u : kReportUsers)
        e["eval/users/" + u + "/rewards/accuracies"] = 0.6;
      records.push_back(e);
    }
  }
  write_metrics(dir, records);
  if (!with_summary) return;
  json summary = {{"stage", "dpo"}, {"steps", 60}, {"wall_seconds", 12.5}};
  summary["win_rate"] = {{"alice", {{"wins", 30}, {"ties", 4}, {"losses", 6}, {"rate", 0.8}}},
                         {"bob", {{"wins", 10}, {"ties", 0}, {"losses", 30}, {"rate", 0.25}}},
                         {"c<&>", {{"wins", 19}, {"ties", 2}, {"losses", 19}, {"rate", 0.5}}}};
  summary["cross_user"] = {{"adapters", kReportUsers},
                           {"judges", kReportUsers},
                           {"win_rate", {{0.8, 0.125, 0.4}, {0.35, 0.25, 0.675}, {0.0, 1.0, 0.5}}}};
  tailor::write_file_atomic(dir / "summary.json", summary.dump(2));
}

}  // namespace

TEST(ReportDpo, PerUserCurvesWinRateBarsAndCrossUserHeatmap) {
  ReportDir dir("dpo");
  write_dpo_run(dir.path, true);
  const fs::path out = dir.path / "elsewhere";
  const auto written = tailor::report::write_report(dir.path, out);
  std::vector<std::string> names;
  for (const auto& f : written.files)
    names.push_back(f.filename().string());
  EXPECT_EQ(names,
            (std::vector<std::string>{"loss.svg", "reward_accuracy.svg", "reward_margins.svg",
                                      "win_rate.svg", "cross_user_win_rate.svg", "index.html"}));
  EXPECT_FALSE(fs::exists(dir.path / "report"));  // --out respected

  // Loss: overall + one series per user, each with one point per training record.
  const std::string loss = tailor::read_file(out / "loss.svg");
  EXPECT_EQ(point_count(series_lines(loss, "all users")), 6u);
  for (const auto& u : kReportUsers) {
    EXPECT_TRUE(contains(legend(loss), u)) << u;
    EXPECT_EQ(point_count(series_lines(loss, u)), 6u) << u;
  }
  EXPECT_NE(loss.find("c&lt;&amp;&gt;"), std::string::npos);
  // Domain over all loss series: the largest is alice's 0.67 at step 10 (the overall loss starts
  // at 0.65), the smallest c<&>'s 0.69 - 0.36 = 0.33 at step 60.
  const double lo = 0.69 - 0.02 * 6 * 3, hi = 0.69 - 0.02;
  const auto alice = single_line(loss, "alice");
  EXPECT_NEAR(alice[0].second, py(hi, lo, hi), kPixel);
  EXPECT_NEAR(alice[0].second, Layout::plot_top, kPixel);
  const auto third = single_line(loss, "c<&>");
  EXPECT_NEAR(third.back().second, Layout::plot_bottom, kPixel);
  EXPECT_NEAR(third.back().first, px(60, 10, 60), kPixel);
  const auto bob = single_line(loss, "bob");
  for (int s = 1; s <= 6; ++s)
    EXPECT_NEAR(bob[s - 1].second, py(0.69 - 0.04 * s, lo, hi), kPixel);

  for (const char* file : {"reward_accuracy.svg", "reward_margins.svg"}) {
    const std::string svg = tailor::read_file(out / file);
    for (const auto& u : kReportUsers) {
      EXPECT_TRUE(contains(legend(svg), u)) << file << " " << u;
      EXPECT_EQ(point_count(series_lines(svg, u)), 6u) << file << " " << u;
    }
  }
  // Margins: the largest is c<&>'s at step 60 (0.1 * 6 * 3), the smallest alice's at step 10.
  const std::string margins = tailor::read_file(out / "reward_margins.svg");
  EXPECT_NEAR(single_line(margins, "c<&>").back().second, Layout::plot_top, kPixel);
  EXPECT_NEAR(single_line(margins, "alice").front().second, Layout::plot_bottom, kPixel);

  // Win-rate bars: height proportional to the rate (axis 0..1 over the plot height), in the
  // summary's order, standing on the x axis; a dashed line at 0.5.
  const std::string bars_svg = tailor::read_file(out / "win_rate.svg");
  const auto bars = with_class(elements(bars_svg, "rect"), "bar");
  const std::map<std::string, double> rates = {{"alice", 0.8}, {"bob", 0.25}, {"c<&>", 0.5}};
  ASSERT_EQ(bars.size(), 3u);
  for (size_t i = 0; i < bars.size(); ++i) {
    const std::string& label = bars[i].attrs.at("data-label");
    EXPECT_EQ(label, kReportUsers[i]);
    const double h = std::stod(bars[i].attrs.at("height"));
    const double y = std::stod(bars[i].attrs.at("y"));
    EXPECT_NEAR(h, rates.at(label) * Layout::plot_height, kPixel) << label;
    EXPECT_NEAR(y + h, Layout::plot_bottom, kPixel) << label;
  }
  const auto reference = with_class(elements(bars_svg, "line"), "reference");
  ASSERT_EQ(reference.size(), 1u);
  EXPECT_NEAR(std::stod(reference[0].attrs.at("y1")),
              Layout::plot_bottom - 0.5 * Layout::plot_height, kPixel);
  EXPECT_EQ(reference[0].attrs.at("y1"), reference[0].attrs.at("y2"));
  EXPECT_TRUE(reference[0].attrs.count("stroke-dasharray"));
  const auto bar_values = with_class(elements(bars_svg, "text"), "bar-value");
  ASSERT_EQ(bar_values.size(), 3u);
  EXPECT_EQ(bar_values[0].text, "0.800");

  // Heatmap: 3 x 3 cells, row-major, each printing its matrix entry; labels on both axes.
  const std::string heat = tailor::read_file(out / "cross_user_win_rate.svg");
  const std::vector<std::vector<double>> matrix = {
      {0.8, 0.125, 0.4}, {0.35, 0.25, 0.675}, {0.0, 1.0, 0.5}};
  const auto cells = with_class(elements(heat, "rect"), "cell");
  const auto printed = with_class(elements(heat, "text"), "cell-value");
  ASSERT_EQ(cells.size(), 9u);
  ASSERT_EQ(printed.size(), 9u);
  for (size_t k = 0; k < 9; ++k) {
    const size_t i = k / 3, j = k % 3;
    EXPECT_EQ(cells[k].attrs.at("data-row"), std::to_string(i));
    EXPECT_EQ(cells[k].attrs.at("data-col"), std::to_string(j));
    EXPECT_NEAR(std::stod(printed[k].text), matrix[i][j], 5e-4) << i << "," << j;
    // The printed value sits in its cell.
    const double x = std::stod(cells[k].attrs.at("x")), y = std::stod(cells[k].attrs.at("y"));
    const double tx = std::stod(printed[k].attrs.at("x")), ty = std::stod(printed[k].attrs.at("y"));
    EXPECT_GT(tx, x);
    EXPECT_LT(tx, x + tailor::report::heatmap_cell);
    EXPECT_GT(ty, y);
    EXPECT_LT(ty, y + tailor::report::heatmap_cell);
  }
  // Darker for larger values: the 1.0 cell is the darkest blue, the 0.0 cell white.
  EXPECT_EQ(cells[6].attrs.at("fill"), "#ffffff");
  EXPECT_EQ(cells[7].attrs.at("fill"), "#2166ac");
  std::vector<std::string> rows, cols;
  for (const auto& e : with_class(elements(heat, "text"), "row-label"))
    rows.push_back(e.text);
  for (const auto& e : with_class(elements(heat, "text"), "column-label"))
    cols.push_back(e.text);
  EXPECT_EQ(rows, kReportUsers);
  EXPECT_EQ(cols, kReportUsers);

  const std::string html = tailor::read_file(out / "index.html");
  for (const auto& f : names)
    if (f != "index.html") {
      EXPECT_NE(html.find("<img src=\"" + f + "\""), std::string::npos) << f;
    }
  EXPECT_NE(html.find("<th>c&lt;&amp;&gt;</th>"), std::string::npos);  // win-rate table
  EXPECT_EQ(html.find("c<&>"), std::string::npos);
}

TEST(ReportDpo, WithoutSummaryTheWinRateFiguresAreSkippedWithANote) {
  ReportDir dir("dpo_nosummary");
  write_dpo_run(dir.path, false);
  const auto report = tailor::report::build_report(dir.path);
  EXPECT_EQ(report.stage, "dpo");
  ASSERT_EQ(report.figures.size(), 3u);
  EXPECT_NE(report.index_html.find("summary.json not found"), std::string::npos);
}

TEST(ReportReward, LossAndPerUserEvalAccuracy) {
  ReportDir dir("reward");
  tailor::write_file_atomic(dir.path / "recipe.yaml", "stage: reward\n");
  std::vector<json> records;
  for (int s = 1; s <= 4; ++s) {
    records.push_back({{"step", s}, {"loss", 0.7 / s}, {"bt_loss", 0.6}, {"phase", "adaptive"}});
    if (s % 2 == 0) {
      records.push_back({{"step", s},
                         {"eval/accuracy", 0.5 + 0.1 * s},
                         {"eval/auc", 0.7},
                         {"eval/u1/accuracy", 0.55},
                         {"eval/u1/auc", 0.6},
                         {"eval/u2/accuracy", 0.45 + 0.1 * s},
                         {"eval/mean_user_accuracy", 0.6}});
    }
  }
  write_metrics(dir.path, records);
  const auto report = tailor::report::build_report(dir.path);
  ASSERT_EQ(report.figures.size(), 2u);
  EXPECT_EQ(point_count(series_lines(report.figures[0].svg, "loss")), 4u);
  const std::string& acc = report.figures[1].svg;
  EXPECT_EQ(report.figures[1].file, "eval_accuracy.svg");
  EXPECT_EQ(legend(acc), (std::vector<std::string>{"all users", "u1", "u2"}));
  EXPECT_EQ(point_count(series_lines(acc, "all users")), 2u);
  EXPECT_EQ(point_count(series_lines(acc, "u2")), 2u);
  // Largest accuracy 0.9 (all users, step 4) on top, smallest 0.55 (u1) at the bottom.
  EXPECT_NEAR(single_line(acc, "all users").back().second, Layout::plot_top, kPixel);
  EXPECT_NEAR(single_line(acc, "u1").front().second, Layout::plot_bottom, kPixel);
}

TEST(ReportElicit, AccuracyAgainstAnswersPerSelectorWithTheDefaultDashed) {
  ReportDir dir("elicit");
  tailor::write_file_atomic(dir.path / "recipe.yaml", "stage: elicit\n");
  write_metrics(dir.path, {{{"step", 1}, {"loss", 0.69}}, {{"step", 2}, {"loss", 0.5}}});
  const json summary = {{"users",
                         {{"length",
                           {{"default_accuracy", 0.4},
                            {"selectors",
                             {{"info_gain", {{"curve", {0.5, 0.7, 0.9}}}},
                              {"random", {{"curve", {0.5, 0.6, nullptr}}}}}}}}}}};
  tailor::write_file_atomic(dir.path / "summary.json", summary.dump());
  const auto report = tailor::report::build_report(dir.path);
  ASSERT_EQ(report.figures.size(), 2u);
  EXPECT_EQ(report.figures[0].file, "loss.svg");
  EXPECT_EQ(report.figures[1].file, "accuracy_length.svg");
  const std::string& acc = report.figures[1].svg;
  EXPECT_EQ(legend(acc),
            (std::vector<std::string>{"info_gain", "random", "default (mean of heads)"}));
  EXPECT_EQ(point_count(series_lines(acc, "info_gain")), 3u);
  EXPECT_EQ(point_count(series_lines(acc, "random")), 2u);  // the null breaks the line
  // 0.9 (info_gain after 2 answers) on top, the default's 0.4 at the bottom, across all K.
  EXPECT_NEAR(single_line(acc, "info_gain").back().second, Layout::plot_top, kPixel);
  const auto flat = single_line(acc, "default (mean of heads)");
  ASSERT_EQ(flat.size(), 2u);
  EXPECT_NEAR(flat.front().second, Layout::plot_bottom, kPixel);
  EXPECT_NEAR(flat.front().first, Layout::plot_left, kPixel);
  EXPECT_NEAR(flat.back().first, Layout::plot_left + Layout::plot_width, kPixel);
}

// PReF (seed 004, Figure 3): the mean AUC over users per selector first, then each user's AUC
// with the mean training user dashed.
TEST(ReportElicit, PrefDrawsTheMeanAucPerSelectorAndEachUsersAuc) {
  ReportDir dir("elicit_pref");
  tailor::write_file_atomic(dir.path / "recipe.yaml", "stage: elicit\n");
  write_metrics(dir.path, {{{"step", 1}, {"loss", 0.69}}, {{"step", 2}, {"loss", 0.5}}});
  const json summary = {
      {"method", "pref"},
      {"users",
       {{"simulated_01",
         {{"default_auc", 0.55},
          {"selectors",
           {{"active", {{"curve", {0.5, 0.6, 0.7}}}},
            {"random", {{"curve", {0.5, 0.55, 0.6}}}}}}}}}},
      {"selector_means",
       {{"mean_curve", {{"active", {0.5, 0.6, 0.8}}, {"random", {0.5, 0.55, 0.6}}}}}}};
  tailor::write_file_atomic(dir.path / "summary.json", summary.dump());
  const auto report = tailor::report::build_report(dir.path);
  ASSERT_EQ(report.figures.size(), 3u);
  EXPECT_EQ(report.figures[0].file, "loss.svg");
  EXPECT_EQ(report.figures[1].file, "auc_mean.svg");
  EXPECT_EQ(report.figures[2].file, "auc_simulated_01.svg");
  const std::string& mean = report.figures[1].svg;
  EXPECT_EQ(legend(mean), (std::vector<std::string>{"active", "random"}));
  // 0.8 (active's mean after 2 answers) is the top of the plot, 0.5 the bottom.
  EXPECT_NEAR(single_line(mean, "active").back().second, Layout::plot_top, kPixel);
  EXPECT_NEAR(single_line(mean, "random").front().second, Layout::plot_bottom, kPixel);
  EXPECT_EQ(legend(report.figures[2].svg),
            (std::vector<std::string>{"active", "random", "default (mean training user)"}));
}

namespace {

const std::vector<std::string> kAgentUsers = {"brief", "shouty"};

// An agent run (seed 002): 3 training records with loss/<adapter> for every adapter of 2 users,
// and a summary with the mean win rates, the cross-user matrix and the learning curves.
void write_agent_run(const fs::path& dir, bool with_summary) {
  tailor::write_file_atomic(dir / "recipe.yaml", "stage: agent\nseed: 2\n");
  std::vector<json> records;
  for (int s = 1; s <= 3; ++s) {
    json r = {{"step", s}, {"time", 1.0 * s}, {"lr", 1e-3}};
    double total = 0;
    int adapters = 0;
    for (size_t u = 0; u < kAgentUsers.size(); ++u) {
      const std::string& user = kAgentUsers[u];
      const std::map<std::string, double> losses = {{"", 2.0 / s + 0.1 * u},
                                                    {"@no_baseline", 2.1 / s},
                                                    {"@naive", 3.0 / s + 0.1 * u},
                                                    {"@rules_n5", 2.5 / s},
                                                    {"@naive_n5", 3.5 / s}};
      for (const auto& [variant, v] : losses) {
        r["loss/" + user + variant] = v;
        total += v;
        ++adapters;
      }
    }
    r["loss"] = total / adapters;
    records.push_back(r);
  }
  write_metrics(dir, records);
  if (!with_summary) return;
  json summary = {{"users", kAgentUsers}, {"answers_per_user", 40}, {"wall_seconds", 3.5}};
  summary["baselines"] = {{"small", "small baseline (M_S zero-shot)"},
                          {"large", "large baseline (M_L zero-shot)"},
                          {"few_shot", "few-shot (M_L with the user's examples)"},
                          {"naive", "naive fine-tune (M_S on the completions)"},
                          {"no_baseline", "no-baseline agent (rules without the zero-shot)"}};
  summary["win_rates"] = {
      {"brief",
       {{"small", 0.9}, {"large", 0.7}, {"few_shot", 0.6}, {"naive", 0.8}, {"no_baseline", 0.5}}},
      {"shouty",
       {{"small", 0.7}, {"large", 0.5}, {"few_shot", 0.4}, {"naive", 0.6}, {"no_baseline", 0.6}}}};
  summary["win_rates_mean"] = {
      {"small", 0.8}, {"large", 0.6}, {"few_shot", 0.5}, {"naive", 0.7}, {"no_baseline", 0.55}};
  summary["cross_user"] = {{"win_rate",
                            {{"brief", {{"brief", 0.75}, {"shouty", 0.25}}},
                             {"shouty", {{"brief", nullptr}, {"shouty", 0.875}}}}},
                           {"diagonal_is_row_max", true}};
  // Keys are strings ("10" sorts before "5" as text); brief's naive 40 is null.
  summary["curves"] = {{"brief",
                        {{"rules", {{"5", 0.6}, {"10", 0.7}, {"20", 0.8}, {"40", 0.9}}},
                         {"naive", {{"5", 0.5}, {"10", 0.55}, {"20", 0.6}, {"40", nullptr}}}}},
                       {"shouty",
                        {{"rules", {{"5", 0.4}, {"10", 0.5}, {"20", 0.6}, {"40", 0.7}}},
                         {"naive", {{"5", 0.3}, {"10", 0.35}, {"20", 0.4}, {"40", 0.5}}}}}};
  tailor::write_file_atomic(dir / "summary.json", summary.dump(2));
}

}  // namespace

TEST(ReportAgent, LossWinRatesCrossUserAndLearningCurve) {
  ReportDir dir("agent");
  write_agent_run(dir.path, true);
  const fs::path out = dir.path / "report";
  const auto written = tailor::report::write_report(dir.path, out);
  std::vector<std::string> names;
  for (const auto& f : written.files)
    names.push_back(f.filename().string());
  EXPECT_EQ(names, (std::vector<std::string>{"agent_loss.svg", "agent_win_rates.svg",
                                             "agent_cross_user.svg", "agent_learning_curve.svg",
                                             "index.html"}));

  // Loss: per user, the agent's rules adapter (solid) and the naive fine-tune (dashed), 3 points
  // each; the other adapters (no_baseline, learning-curve) are not drawn.
  const std::string loss = tailor::read_file(out / "agent_loss.svg");
  EXPECT_EQ(legend(loss), (std::vector<std::string>{"brief rules", "brief naive", "shouty rules",
                                                    "shouty naive"}));
  for (const auto& name : legend(loss))
    EXPECT_EQ(point_count(series_lines(loss, name)), 3u) << name;
  for (const auto& e : with_class(elements(loss, "polyline"), "series")) {
    const bool naive = e.attrs.at("data-series").find(" naive") != std::string::npos;
    EXPECT_EQ(e.attrs.count("stroke-dasharray"), naive ? 1u : 0u) << e.attrs.at("data-series");
  }
  // Domain: 2.0 / 3 (brief rules, step 3) .. 3.1 (shouty naive, step 1).
  EXPECT_NEAR(single_line(loss, "shouty naive").front().second, Layout::plot_top, kPixel);
  EXPECT_NEAR(single_line(loss, "brief rules").back().second, Layout::plot_bottom, kPixel);
  EXPECT_NEAR(single_line(loss, "brief rules")[1].second, py(1.0, 2.0 / 3, 3.1), kPixel);

  // Win-rate bars: the seed's baseline order (not the summary's sorted keys), heights
  // proportional to the mean rates, a dashed line at 0.5.
  const std::string bars_svg = tailor::read_file(out / "agent_win_rates.svg");
  const auto bars = with_class(elements(bars_svg, "rect"), "bar");
  const std::vector<std::string> order = {"small", "large", "few_shot", "naive", "no_baseline"};
  const std::vector<double> means = {0.8, 0.6, 0.5, 0.7, 0.55};
  ASSERT_EQ(bars.size(), order.size());
  for (size_t i = 0; i < bars.size(); ++i) {
    EXPECT_EQ(bars[i].attrs.at("data-label"), order[i]);
    EXPECT_NEAR(std::stod(bars[i].attrs.at("data-value")), means[i], 5e-4) << order[i];
    const double h = std::stod(bars[i].attrs.at("height"));
    EXPECT_NEAR(h, means[i] * Layout::plot_height, kPixel) << order[i];
    EXPECT_NEAR(std::stod(bars[i].attrs.at("y")) + h, Layout::plot_bottom, kPixel) << order[i];
  }
  const auto bar_values = with_class(elements(bars_svg, "text"), "bar-value");
  ASSERT_EQ(bar_values.size(), order.size());
  EXPECT_EQ(bar_values[0].text, "0.800");
  EXPECT_EQ(bar_values[4].text, "0.550");
  const auto reference = with_class(elements(bars_svg, "line"), "reference");
  ASSERT_EQ(reference.size(), 1u);
  EXPECT_NEAR(std::stod(reference[0].attrs.at("y1")),
              Layout::plot_bottom - 0.5 * Layout::plot_height, kPixel);
  EXPECT_TRUE(contains(legend(bars_svg), "0.5 = tie with baseline"));

  // Cross-user heatmap: rows = judges, columns = agents, both in the summary's user order; the
  // null cell prints as missing.
  const std::string heat = tailor::read_file(out / "agent_cross_user.svg");
  EXPECT_NE(heat.find("Cross-user win rate against M_L alone (rows: users judging, columns: "
                      "agents)"),
            std::string::npos);
  std::vector<std::string> rows, cols;
  for (const auto& e : with_class(elements(heat, "text"), "row-label"))
    rows.push_back(e.text);
  for (const auto& e : with_class(elements(heat, "text"), "column-label"))
    cols.push_back(e.text);
  EXPECT_EQ(rows, kAgentUsers);
  EXPECT_EQ(cols, kAgentUsers);
  const auto cells = with_class(elements(heat, "rect"), "cell");
  ASSERT_EQ(cells.size(), 4u);
  const std::vector<std::string> cell_values = {"0.750", "0.250", "nan", "0.875"};
  for (size_t k = 0; k < cells.size(); ++k)
    EXPECT_EQ(cells[k].attrs.at("data-value"), cell_values[k]) << k;
  // Own agents (the diagonal) are outlined.
  EXPECT_EQ(with_class(elements(heat, "rect"), "own").size(), 2u);

  // Learning curve: the mean over users at each size, sizes in numeric order; the null naive
  // point at 40 leaves shouty's 0.5 as the mean there. Domain x 5..40, y 0.4..0.8.
  const std::string curve = tailor::read_file(out / "agent_learning_curve.svg");
  EXPECT_TRUE(contains(legend(curve), "rule fine-tuning (agent)"));
  EXPECT_TRUE(contains(legend(curve), "naive fine-tuning"));
  const auto rules = single_line(curve, "rule fine-tuning (agent)");
  const auto naive = single_line(curve, "naive fine-tuning");
  const std::vector<double> sizes = {5, 10, 20, 40};
  const std::vector<double> rules_mean = {0.5, 0.6, 0.7, 0.8};
  const std::vector<double> naive_mean = {0.4, 0.45, 0.5, 0.5};
  ASSERT_EQ(rules.size(), sizes.size());
  ASSERT_EQ(naive.size(), sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_NEAR(rules[i].first, px(sizes[i], 5, 40), kPixel) << sizes[i];
    EXPECT_NEAR(rules[i].second, py(rules_mean[i], 0.4, 0.8), kPixel) << sizes[i];
    EXPECT_NEAR(naive[i].second, py(naive_mean[i], 0.4, 0.8), kPixel) << sizes[i];
  }
  EXPECT_NEAR(rules.back().second, Layout::plot_top, kPixel);
  EXPECT_NEAR(naive.front().second, Layout::plot_bottom, kPixel);

  const std::string html = tailor::read_file(out / "index.html");
  EXPECT_NE(html.find("stage <b>agent</b>"), std::string::npos);
  for (const auto& f : names)
    if (f != "index.html") {
      EXPECT_NE(html.find("<img src=\"" + f + "\""), std::string::npos) << f;
    }
}

TEST(ReportAgent, WithoutSummaryOnlyTheLossWithANoteAndTheStageIsGuessed) {
  ReportDir dir("agent_nosummary");
  write_agent_run(dir.path, false);
  auto report = tailor::report::build_report(dir.path);
  EXPECT_EQ(report.stage, "agent");
  ASSERT_EQ(report.figures.size(), 1u);
  EXPECT_EQ(report.figures[0].file, "agent_loss.svg");
  EXPECT_NE(report.index_html.find("summary.json not found"), std::string::npos);

  // Without recipe.yaml the loss/<adapter> keys say agent (not sft, not dpo).
  fs::remove(dir.path / "recipe.yaml");
  report = tailor::report::build_report(dir.path);
  EXPECT_EQ(report.stage, "agent");
  ASSERT_EQ(report.figures.size(), 1u);
  EXPECT_EQ(report.figures[0].file, "agent_loss.svg");
}

TEST(ReportErrors, NameThePathAndLine) {
  ReportDir dir("errors");
  const fs::path missing = dir.path / "no_such_run";
  std::string message = tailor::test::error_of([&] { tailor::report::build_report(missing); });
  EXPECT_NE(message.find(missing.string()), std::string::npos) << message;

  tailor::write_file_atomic(dir.path / "recipe.yaml", "stage: sft\n");
  message = tailor::test::error_of([&] { tailor::report::build_report(dir.path); });
  EXPECT_NE(message.find((dir.path / "metrics.jsonl").string()), std::string::npos) << message;

  tailor::write_file_atomic(dir.path / "metrics.jsonl",
                            "{\"step\": 1, \"loss\": 2}\n\n{\"step\": 2, \"loss\": }\n");
  message = tailor::test::error_of([&] { tailor::report::build_report(dir.path); });
  EXPECT_NE(message.find((dir.path / "metrics.jsonl").string() + ":3"), std::string::npos)
      << message;

  tailor::write_file_atomic(dir.path / "metrics.jsonl", "{\"loss\": 2}\n");
  message = tailor::test::error_of([&] { tailor::report::build_report(dir.path); });
  EXPECT_NE(message.find("metrics.jsonl:1: no numeric \"step\""), std::string::npos) << message;

  // An unterminated last line is a run still writing it: skipped with a note.
  tailor::write_file_atomic(
      dir.path / "metrics.jsonl",
      "{\"step\": 1, \"loss\": 2}\n{\"step\": 2, \"loss\": 1}\n{\"step\": 3, \"lo");
  const auto report = tailor::report::build_report(dir.path);
  ASSERT_EQ(report.figures.size(), 1u);
  EXPECT_EQ(point_count(series_lines(report.figures[0].svg, "loss")), 2u);
  EXPECT_NE(report.index_html.find("metrics.jsonl:3: incomplete last line"), std::string::npos);
}

TEST(ReportCli, WritesIntoRunDirReportAndPrintsThePaths) {
  ReportDir dir("cli");
  std::vector<double> loss, eval;
  write_metrics(dir.path, sft_records(&loss, &eval));
  tailor::write_file_atomic(dir.path / "recipe.yaml", "stage: sft\n");
  auto run = [](const std::string& command, int* status) {
    std::string out;
    FILE* pipe = popen((command + " 2>&1").c_str(), "r");
    char buffer[4096];
    while (size_t n = fread(buffer, 1, sizeof buffer, pipe))
      out.append(buffer, n);
    *status = pclose(pipe);
    return out;
  };
  int status = 0;
  std::string out = run(std::string(TAILOR_BINARY) + " report " + dir.path.string(), &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find((dir.path / "report" / "loss.svg").string() + "\n"), std::string::npos) << out;
  EXPECT_NE(out.find((dir.path / "report" / "index.html").string() + "\n"), std::string::npos)
      << out;
  EXPECT_TRUE(fs::exists(dir.path / "report" / "index.html"));

  out = run(std::string(TAILOR_BINARY) + " report " + (dir.path / "nope").string(), &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find((dir.path / "nope").string() + ": run directory not found"), std::string::npos)
      << out;
}
