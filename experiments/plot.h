#pragma once
// Line and scatter plots as SVG, drawn by gnuplot (Debian's gnuplot-nox): quantbench describes
// what to plot and gnuplot, a well-kept tool, does the drawing.

#include <string>
#include <vector>

namespace qb {

/// One line (or cloud) of a plot. Error bars are drawn when low/high are given for every point.
struct Series {
  std::string title;
  std::vector<double> x;
  std::vector<double> y;
  std::vector<double> low;
  std::vector<double> high;
  /// Point sizes (gnuplot's pointsize units), when every point has one: a third dimension.
  std::vector<double> point_size;
};

struct PlotSpec {
  std::string title;
  std::string x_label;
  std::string y_label;
  /// Categorical x axis: tick i (at x = i) reads x_tics[i]; empty means a numeric axis.
  std::vector<std::string> x_tics;
  bool log_x = false;
  /// Connect each series' points (false: points only).
  bool lines = true;
  /// Draw each series as bars, the series side by side at each x (a categorical axis).
  bool bars = false;
  std::vector<Series> series;
};

/// The gnuplot script that draws `spec` into the SVG file `svg_path` (data inline).
std::string gnuplot_script(const PlotSpec& spec, const std::string& svg_path);

/// Runs gnuplot on gnuplot_script(spec, svg_path); std::runtime_error saying what to install
/// when gnuplot is missing, or with its exit status when it fails.
void render_svg(const PlotSpec& spec, const std::string& svg_path);

}  // namespace qb
