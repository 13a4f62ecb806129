#include "cli/report/charts.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <tuple>

#include "cli/report/svg.h"

namespace tailor::report {
namespace {

using L = Layout;
const char* const kGrid = "#e6e6e6";
const char* const kAxis = "#333333";

std::string fixed3(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

void title(Svg& svg, const std::string& text, double centre_x) {
  svg.text(centre_x, 28, text, 16, "middle", {{"class", "title"}, {"font-weight", "bold"}});
}

// Light grid lines, tick marks and labels for the y axis of a plot area spanning [lo, hi].
void y_axis(Svg& svg, double lo, double hi, const std::string& label) {
  double step = 1;
  for (double t : nice_ticks(lo, hi, 6, false, &step)) {
    const double y = L::plot_bottom - (t - lo) / (hi - lo) * L::plot_height;
    svg.line(L::plot_left, y, L::plot_right, y, kGrid);
    svg.line(L::plot_left - 5, y, L::plot_left, y, kAxis);
    svg.text(L::plot_left - 8, y + 4, tick_label(t, step), 11, "end", {{"class", "tick"}});
  }
  svg.line(L::plot_left, L::plot_top, L::plot_left, L::plot_bottom, kAxis);
  svg.text(22, (L::plot_top + L::plot_bottom) / 2, label, 13, "middle", {{"class", "axis-label"}},
           -90);
}

void x_axis_line(Svg& svg, const std::string& label) {
  svg.line(L::plot_left, L::plot_bottom, L::plot_right, L::plot_bottom, kAxis);
  svg.text((L::plot_left + L::plot_right) / 2, L::plot_bottom + 42, label, 13, "middle",
           {{"class", "axis-label"}});
}

// One legend row: a short line (or box) in the series' style, then the name.
void legend_entry(Svg& svg, size_t row, size_t rows, const std::string& name,
                  const std::string& colour, bool dashed, bool box) {
  const double spacing =
      std::min(20.0, (L::kHeight - L::plot_top - 10) / std::max<size_t>(rows, 1));
  const double y = L::plot_top + 8 + row * spacing;
  if (box) {
    svg.rect(L::legend_left, y - 6, 24, 12, colour);
  } else {
    Attributes extra;
    if (dashed) extra.emplace_back("stroke-dasharray", "6 4");
    svg.line(L::legend_left, y, L::legend_left + 24, y, colour, 2.5, extra);
  }
  svg.text(L::legend_left + 30, y + 4, name, 12, "start", {{"class", "legend"}});
}

std::pair<double, double> widen(double lo, double hi, double single) {
  if (lo < hi) return {lo, hi};
  return {lo - single, hi + single};
}

}  // namespace

bool has_points(const LineChart& chart) {
  for (const auto& s : chart.series)
    for (size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) return true;
  return false;
}

Domain line_domain(const LineChart& chart) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  double x_lo = inf, x_hi = -inf, y_lo = inf, y_hi = -inf;
  for (const auto& s : chart.series) {
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      x_lo = std::min(x_lo, s.x[i]), x_hi = std::max(x_hi, s.x[i]);
      y_lo = std::min(y_lo, s.y[i]), y_hi = std::max(y_hi, s.y[i]);
    }
  }
  Domain d;
  if (x_lo > x_hi) return d;  // no points
  std::tie(d.x_min, d.x_max) = widen(x_lo, x_hi, 0.5);
  std::tie(d.y_min, d.y_max) = widen(y_lo, y_hi, y_lo != 0 ? std::fabs(y_lo) / 10 : 1.0);
  return d;
}

std::string line_chart(const LineChart& chart) {
  Svg svg(L::kWidth, L::kHeight);
  const Domain d = line_domain(chart);
  auto px = [&](double x) {
    return L::plot_left + (x - d.x_min) / (d.x_max - d.x_min) * L::plot_width;
  };
  auto py = [&](double y) {
    return L::plot_bottom - (y - d.y_min) / (d.y_max - d.y_min) * L::plot_height;
  };
  title(svg, chart.title, (L::plot_left + L::plot_right) / 2);
  double step = 1;
  for (double t : nice_ticks(d.x_min, d.x_max, 6, true, &step)) {
    svg.line(px(t), L::plot_top, px(t), L::plot_bottom, kGrid);
    svg.line(px(t), L::plot_bottom, px(t), L::plot_bottom + 5, kAxis);
    svg.text(px(t), L::plot_bottom + 19, tick_label(t, step), 11, "middle", {{"class", "tick"}});
  }
  y_axis(svg, d.y_min, d.y_max, chart.y_label);
  x_axis_line(svg, chart.x_label);

  for (size_t k = 0; k < chart.series.size(); ++k) {
    const Series& s = chart.series[k];
    const std::string colour = s.colour.empty() ? series_colour(k) : s.colour;
    std::vector<size_t> order(s.x.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return s.x[a] < s.x[b]; });
    // Consecutive finite points form one polyline; a NaN value ends it.
    std::vector<std::pair<double, double>> run;
    auto flush = [&] {
      if (run.empty()) return;
      std::string points;
      for (const auto& [x, y] : run)
        points += (points.empty() ? "" : " ") + svg_number(x) + "," + svg_number(y);
      Attributes a = {{"class", "series"},         {"data-series", s.name},
                      {"points", points},          {"fill", "none"},
                      {"stroke", colour},          {"stroke-width", svg_number(s.width)},
                      {"stroke-linejoin", "round"}};
      if (s.dashed) a.emplace_back("stroke-dasharray", "6 4");
      svg.element("polyline", a);
      if (run.size() == 1) {  // a lone point has no line to show it
        svg.element("circle", {{"cx", svg_number(run[0].first)},
                               {"cy", svg_number(run[0].second)},
                               {"r", "2.5"},
                               {"fill", colour}});
      }
      run.clear();
    };
    for (size_t i : order) {
      if (!std::isfinite(s.x[i])) continue;
      if (!std::isfinite(s.y[i])) {
        flush();
        continue;
      }
      run.emplace_back(px(s.x[i]), py(s.y[i]));
    }
    flush();
    legend_entry(svg, k, chart.series.size(), s.name, colour, s.dashed, false);
  }
  return svg.str();
}

std::string bar_chart(const BarChart& chart) {
  Svg svg(L::kWidth, L::kHeight);
  const size_t n = chart.values.size();
  double y_max = 1;
  for (double v : chart.values)
    if (std::isfinite(v)) y_max = std::max(y_max, v);
  auto py = [&](double v) { return L::plot_bottom - v / y_max * L::plot_height; };
  title(svg, chart.title, (L::plot_left + L::plot_right) / 2);
  y_axis(svg, 0, y_max, chart.y_label);
  x_axis_line(svg, chart.x_label);

  const std::string colour = series_colour(0);
  const double band = L::plot_width / std::max<size_t>(n, 1);
  const bool rotate = n > 6;
  for (size_t i = 0; i < n; ++i) {
    const double v = std::isfinite(chart.values[i]) ? std::max(0.0, chart.values[i]) : 0.0;
    const double centre = L::plot_left + (i + 0.5) * band;
    const double top = py(v);
    svg.rect(centre - 0.3 * band, top, 0.6 * band, L::plot_bottom - top, colour,
             {{"class", "bar"},
              {"data-label", chart.labels.at(i)},
              {"data-value", std::isfinite(chart.values[i]) ? fixed3(chart.values[i]) : "nan"}});
    svg.text(centre, top - 5, std::isfinite(chart.values[i]) ? fixed3(chart.values[i]) : "–", 11,
             "middle", {{"class", "bar-value"}});
    if (rotate) {
      svg.text(centre, L::plot_bottom + 14, chart.labels[i], 11, "end", {{"class", "category"}},
               -30);
    } else {
      svg.text(centre, L::plot_bottom + 18, chart.labels[i], 11, "middle", {{"class", "category"}});
    }
  }
  const size_t rows = chart.has_reference ? 2 : 1;
  legend_entry(svg, 0, rows, chart.series_name, colour, false, true);
  if (chart.has_reference) {
    const double y = py(chart.reference);
    svg.line(L::plot_left, y, L::plot_right, y, kAxis, 1.5,
             {{"class", "reference"}, {"stroke-dasharray", "6 4"}});
    legend_entry(svg, 1, rows, chart.reference_name, kAxis, true, false);
  }
  return svg.str();
}

namespace {

// White (0) to blue #2166ac (1), clamped.
std::string heat_colour(double v) {
  if (!std::isfinite(v)) return "#cccccc";
  v = std::clamp(v, 0.0, 1.0);
  auto mix = [&](int to) { return static_cast<int>(std::lround(255 + v * (to - 255))); };
  char buf[16];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", mix(0x21), mix(0x66), mix(0xac));
  return buf;
}

size_t longest(const std::vector<std::string>& labels) {
  size_t n = 0;
  for (const auto& s : labels)
    n = std::max(n, s.size());
  return n;
}

}  // namespace

std::string heatmap(const Heatmap& map) {
  const size_t rows = map.row_labels.size(), cols = map.column_labels.size();
  constexpr double kChar = 7;  // rough width of one 11 px character
  const double label_width = std::max(40.0, kChar * longest(map.row_labels));
  const bool rotate = kChar * longest(map.column_labels) > heatmap_cell - 4;
  const double column_label_height = rotate ? 0.6 * kChar * longest(map.column_labels) + 14 : 20;
  const double left = 36 + label_width + 8;
  const double top = 64 + column_label_height;
  const double grid_w = cols * heatmap_cell, grid_h = std::max(rows * heatmap_cell, 80.0);
  // Wide enough for the title too (about 9 px per character of 16 px bold text).
  const double width =
      std::max({left + grid_w + 90, 360.0, 9.0 * static_cast<double>(map.title.size()) + 40});
  const double height = top + grid_h + 24;
  Svg svg(width, height);
  title(svg, map.title, width / 2);
  svg.text(left + grid_w / 2, 50, map.column_title, 13, "middle", {{"class", "axis-label"}});
  svg.text(18, top + rows * heatmap_cell / 2, map.row_title, 13, "middle",
           {{"class", "axis-label"}}, -90);
  for (size_t j = 0; j < cols; ++j) {
    const double cx = left + (j + 0.5) * heatmap_cell;
    if (rotate) {
      svg.text(cx, top - 6, map.column_labels[j], 11, "start", {{"class", "column-label"}}, -35);
    } else {
      svg.text(cx, top - 6, map.column_labels[j], 11, "middle", {{"class", "column-label"}});
    }
  }
  for (size_t i = 0; i < rows; ++i) {
    const double y = top + i * heatmap_cell;
    svg.text(left - 6, y + heatmap_cell / 2 + 4, map.row_labels[i], 11, "end",
             {{"class", "row-label"}});
    for (size_t j = 0; j < cols; ++j) {
      const double v = j < map.values.at(i).size() ? map.values[i][j] : NAN;
      const double x = left + j * heatmap_cell;
      const Attributes extra = {{"class", "cell"},
                                {"data-row", std::to_string(i)},
                                {"data-col", std::to_string(j)},
                                {"data-value", std::isfinite(v) ? fixed3(v) : "nan"},
                                {"stroke", "white"},
                                {"stroke-width", "1"}};
      svg.rect(x, y, heatmap_cell, heatmap_cell, heat_colour(v), extra);
      svg.text(
          x + heatmap_cell / 2, y + heatmap_cell / 2 + 4, std::isfinite(v) ? fixed3(v) : "–", 12,
          "middle",
          {{"class", "cell-value"}, {"fill", std::isfinite(v) && v > 0.6 ? "white" : "black"}});
    }
  }
  // Outlines last, so that no neighbouring cell covers them.
  for (size_t i = 0; i < rows; ++i)
    for (size_t j = 0; j < cols; ++j)
      if (map.row_labels[i] == map.column_labels[j]) {
        svg.rect(left + j * heatmap_cell + 1, top + i * heatmap_cell + 1, heatmap_cell - 2,
                 heatmap_cell - 2, "none",
                 {{"class", "own"}, {"stroke", "black"}, {"stroke-width", "2"}});
      }
  // Colour scale: a vertical bar from 0 (bottom, white) to 1 (top, blue).
  const double bar_x = left + grid_w + 24, bar_h = std::min(grid_h, 200.0);
  svg.raw(
      "<defs><linearGradient id=\"scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">"
      "<stop offset=\"0\" stop-color=\"" +
      heat_colour(0) + "\"/><stop offset=\"1\" stop-color=\"" + heat_colour(1) +
      "\"/></linearGradient></defs>\n");
  svg.rect(bar_x, top, 14, bar_h, "url(#scale)", {{"stroke", kAxis}, {"stroke-width", "0.5"}});
  svg.text(bar_x + 20, top + 8, "1", 11, "start", {{"class", "scale"}});
  svg.text(bar_x + 20, top + bar_h / 2 + 4, "0.5", 11, "start", {{"class", "scale"}});
  svg.text(bar_x + 20, top + bar_h, "0", 11, "start", {{"class", "scale"}});
  return svg.str();
}

}  // namespace tailor::report
