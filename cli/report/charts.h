// The three figures of `tailor report`, each a complete SVG document (svg.h):
//   line_chart  - series of (x, y) points as polylines; a NaN y breaks the line there
//   bar_chart   - one bar per category, optional dashed reference line
//   heatmap     - a matrix of values in [0, 1], each cell's value printed
//
// The SVG carries classes and data- attributes so that tests (and anyone scripting) can read a
// figure back: <polyline class="series" data-series="NAME" points="x,y x,y ...">, legend entries
// <text class="legend">NAME</text>, <rect class="bar" data-label="L" data-value="V">,
// <rect class="cell" data-row="I" data-col="J" data-value="V"> followed by
// <text class="cell-value">V printed with 3 decimals</text>, <line class="reference">.
#pragma once

#include <string>
#include <vector>

namespace tailor::report {

// Every chart is kWidth x kHeight pixels; data is drawn inside the plot area
// [plot_left, plot_right] x [plot_top, plot_bottom] (SVG y grows downwards); the legend sits to
// the right of it.
struct Layout {
  static constexpr double kWidth = 780, kHeight = 440;
  static constexpr double plot_left = 80, plot_right = 560;
  static constexpr double plot_top = 50, plot_bottom = 380;
  static constexpr double plot_width = plot_right - plot_left;
  static constexpr double plot_height = plot_bottom - plot_top;
  static constexpr double legend_left = 580;
};

struct Series {
  std::string name;
  std::vector<double> x, y;  // same length; y NaN = a missing (null) value: the line breaks
  std::string colour;        // empty: series_colour(index in the chart)
  double width = 1.8;
  bool dashed = false;
};

struct LineChart {
  std::string title, x_label = "step", y_label;
  std::vector<Series> series;
};

// The line chart's mapping. The data domain is [min, max] over every finite point of every series
// (x and y separately; where all x are one value v the domain is v +- 0.5, where all y are one
// value v it is v +- |v| / 10, or +- 1 for v = 0), and maps linearly onto the plot area:
//   px = plot_left + (x - x_min) / (x_max - x_min) * plot_width
//   py = plot_bottom - (y - y_min) / (y_max - y_min) * plot_height
// so the largest y lies on plot_top, the smallest on plot_bottom, the first step on plot_left
// and the last on plot_right. Points are written with 2 decimals. Ticks are nice_ticks within the
// domain (x ticks integers). Points are drawn in order of x within each series.
struct Domain {
  double x_min = 0, x_max = 1, y_min = 0, y_max = 1;
};
Domain line_domain(const LineChart& chart);
// False if no series has a finite point (nothing to draw).
bool has_points(const LineChart& chart);
std::string line_chart(const LineChart& chart);

// Bars: category i occupies the band [plot_left + i * band, plot_left + (i + 1) * band],
// band = plot_width / n; its bar is 60% of the band wide, centred, from plot_bottom up to
//   top = plot_bottom - value / y_max * plot_height,  y_max = max(1, largest value)
// (bars are fractions: the axis always shows 0..1 at least). Negative values draw as 0.
struct BarChart {
  std::string title, x_label, y_label, series_name = "value";
  std::vector<std::string> labels;
  std::vector<double> values;
  bool has_reference = false;
  double reference = 0.5;  // dashed horizontal line at this value
  std::string reference_name;
};
std::string bar_chart(const BarChart& chart);

// Cells: row i (row_labels[i]) and column j (column_labels[j]) is a square of side
// `heatmap_cell` coloured from white (0) to blue (1), with the value printed (3 decimals) in its
// centre. A cell whose row and column labels are equal gets a black outline. NaN: grey, "–".
constexpr double heatmap_cell = 64;
struct Heatmap {
  std::string title, row_title, column_title;
  std::vector<std::string> row_labels, column_labels;
  std::vector<std::vector<double>> values;  // [rows][columns]
};
std::string heatmap(const Heatmap& map);

}  // namespace tailor::report
