// A tiny SVG writer for `tailor report`: elements as text, attributes and text escaped for XML.
// The charts (charts.h) are built from it; nothing here knows about runs or metrics.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace tailor::report {

// &, <, >, " and ' as XML entities (safe in text and in attribute values).
std::string xml_escape(const std::string& text);

// A coordinate or value for an attribute: fixed, 2 decimals, trailing zeros dropped
// ("12.5", "40", "-3.25"); never "-0".
std::string svg_number(double v);

// A tick label for `value` on an axis whose ticks are `step` apart: as many decimals as the step
// needs ("0.25", "1.5", "200"), %g for very large or very small magnitudes.
std::string tick_label(double value, double step);

// Up to about `target` tick values that are multiples of a "nice" step (1, 2 or 5 times a power
// of ten) and lie in [lo, hi] (inclusive, with a little tolerance). `integer` keeps the step >= 1
// (training steps). Returns the ticks; `step_out`, if given, receives the step.
std::vector<double> nice_ticks(double lo, double hi, int target = 5, bool integer = false,
                               double* step_out = nullptr);

// Colour of series `index` (0-based): the ten "tab10" colours, then evenly spread hues.
std::string series_colour(size_t index);

using Attributes = std::vector<std::pair<std::string, std::string>>;

class Svg {
 public:
  Svg(double width, double height);

  // <tag a="v" ...>escaped text</tag>, or <tag .../> when text is empty. Values are escaped.
  void element(const std::string& tag, const Attributes& attributes, const std::string& text = "");
  void line(double x1, double y1, double x2, double y2, const std::string& stroke,
            double stroke_width = 1, Attributes extra = {});
  void rect(double x, double y, double w, double h, const std::string& fill, Attributes extra = {});
  // anchor: start | middle | end. rotate: degrees about (x, y).
  void text(double x, double y, const std::string& text, double size = 12,
            const std::string& anchor = "start", Attributes extra = {}, double rotate = 0);
  // Markup written as is (e.g. <defs>); the caller escapes.
  void raw(const std::string& markup);

  // The complete document.
  std::string str() const;

 private:
  double width_, height_;
  std::string body_;
};

}  // namespace tailor::report
