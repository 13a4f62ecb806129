#include "cli/report/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace tailor::report {

std::string xml_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace {

// printf into a std::string.
std::string format(const char* fmt, double v, int precision) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, precision, v);
  return buf;
}

// "1.50" -> "1.5", "2.00" -> "2".
std::string trim_zeros(std::string s) {
  if (s.find('.') == std::string::npos) return s;
  while (s.back() == '0')
    s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

}  // namespace

std::string svg_number(double v) {
  std::string s = trim_zeros(format("%.*f", v, 2));
  return s == "-0" ? "0" : s;
}

std::string tick_label(double value, double step) {
  const double magnitude = std::max(std::fabs(value), step);
  if (magnitude >= 1e6 || step < 1e-4) return format("%.*g", value, 3);
  if (std::fabs(value) < step * 1e-9) value = 0;
  const int decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  std::string s = format("%.*f", value, decimals);
  return s == "-0" ? "0" : s;
}

std::vector<double> nice_ticks(double lo, double hi, int target, bool integer, double* step_out) {
  std::vector<double> ticks;
  if (!std::isfinite(lo) || !std::isfinite(hi) || hi < lo) return ticks;
  const double range = hi > lo ? hi - lo : std::max(std::fabs(lo), 1.0);
  const double raw = range / std::max(1, target);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / magnitude;
  double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * magnitude;
  if (integer) step = std::max(step, 1.0);
  if (step_out) *step_out = step;
  const double eps = step * 1e-6;
  for (double k = std::ceil((lo - eps) / step); k * step <= hi + eps; k += 1)
    ticks.push_back(std::fabs(k * step) < eps ? 0.0 : k * step);
  return ticks;
}

std::string series_colour(size_t index) {
  static const char* const tab10[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  if (index < 10) return tab10[index];
  // Golden-angle hues beyond ten series: each new colour far from the previous ones.
  const int hue = static_cast<int>(std::fmod(index * 137.508, 360.0));
  return "hsl(" + std::to_string(hue) + ",65%,45%)";
}

Svg::Svg(double width, double height) : width_(width), height_(height) {}

void Svg::element(const std::string& tag, const Attributes& attributes, const std::string& text) {
  body_ += "<" + tag;
  for (const auto& [name, value] : attributes)
    body_ += " " + name + "=\"" + xml_escape(value) + "\"";
  body_ += text.empty() ? "/>\n" : ">" + xml_escape(text) + "</" + tag + ">\n";
}

void Svg::line(double x1, double y1, double x2, double y2, const std::string& stroke,
               double stroke_width, Attributes extra) {
  Attributes a = {{"x1", svg_number(x1)}, {"y1", svg_number(y1)},
                  {"x2", svg_number(x2)}, {"y2", svg_number(y2)},
                  {"stroke", stroke},     {"stroke-width", svg_number(stroke_width)}};
  a.insert(a.end(), extra.begin(), extra.end());
  element("line", a);
}

void Svg::rect(double x, double y, double w, double h, const std::string& fill, Attributes extra) {
  Attributes a = {{"x", svg_number(x)},
                  {"y", svg_number(y)},
                  {"width", svg_number(w)},
                  {"height", svg_number(h)},
                  {"fill", fill}};
  a.insert(a.end(), extra.begin(), extra.end());
  element("rect", a);
}

void Svg::text(double x, double y, const std::string& text, double size, const std::string& anchor,
               Attributes extra, double rotate) {
  Attributes a = {{"x", svg_number(x)},
                  {"y", svg_number(y)},
                  {"font-size", svg_number(size)},
                  {"text-anchor", anchor}};
  if (rotate != 0) {
    a.emplace_back("transform", "rotate(" + svg_number(rotate) + " " + svg_number(x) + " " +
                                    svg_number(y) + ")");
  }
  a.insert(a.end(), extra.begin(), extra.end());
  if (text.empty()) return;
  element("text", a, text);
}

void Svg::raw(const std::string& markup) {
  body_ += markup;
}

std::string Svg::str() const {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
         "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
         svg_number(width_) + "\" height=\"" + svg_number(height_) + "\" viewBox=\"0 0 " +
         svg_number(width_) + " " + svg_number(height_) +
         "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
         "<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"white\"/>\n" +
         body_ + "</svg>\n";
}

}  // namespace tailor::report
