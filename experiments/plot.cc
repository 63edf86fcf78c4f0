#include "experiments/plot.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>

#include "base/atomic_file.h"
#include "base/read_file.h"

namespace qb {

namespace {

/// A gnuplot string literal: double quotes, with backslashes and quotes escaped; for labels
/// (`text`), the enhanced-text specials (^ _ @ & ~ { }) are made literal too.
std::string quoted(const std::string& value, bool text = true) {
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    if (text && (c == '^' || c == '_' || c == '@' || c == '&' || c == '~' || c == '{' || c == '}')) {
      out += "\\\\";
    }
    out += c;
  }
  return out + "\"";
}

std::string number(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.10g", value);
  return buffer;
}

}  // namespace

std::string gnuplot_script(const PlotSpec& spec, const std::string& svg_path) {
  std::string s = "set terminal svg size 760,460 dynamic enhanced font \"sans,11\" background "
                  "\"white\"\nset output " +
                  quoted(svg_path, /*text=*/false) + "\nset title " + quoted(spec.title) + "\nset xlabel " +
                  quoted(spec.x_label) + "\nset ylabel " + quoted(spec.y_label) +
                  "\nset grid\nset key outside below box\nset offsets graph 0.05, graph "
                  "0.05, graph 0.05, graph 0.05\n";
  if (spec.log_x) s += "set logscale x 2\n";
  // One category alone would give gnuplot an empty x range.
  if (spec.x_tics.size() == 1) s += "set xrange [-1:1]\n";
  if (!spec.x_tics.empty()) {
    s += "set xtics (";
    for (size_t i = 0; i < spec.x_tics.size(); ++i) {
      s += (i ? ", " : "") + quoted(spec.x_tics[i]) + " " + std::to_string(i);
    }
    s += ")";
    // Long categorical axes (layer names) stay readable standing up.
    if (spec.x_tics.size() > 8) s += " rotate by 90 right font \",8\"";
    s += "\n";
  }
  // Bars share each category's unit width, side by side.
  const double bar_width = 0.8 / static_cast<double>(std::max<size_t>(1, spec.series.size()));
  if (spec.bars) s += "set style fill solid 0.7 border -1\nset boxwidth " + number(bar_width) + "\n";
  std::string plot = "plot ";
  for (size_t k = 0; k < spec.series.size(); ++k) {
    const Series& series = spec.series[k];
    if (spec.bars) {
      const std::string block = "$s" + std::to_string(k);
      const double shift = (static_cast<double>(k) - (static_cast<double>(spec.series.size()) - 1) / 2) * bar_width;
      s += block + " << EOD\n";
      for (size_t i = 0; i < series.x.size(); ++i) {
        s += number(series.x[i] + shift) + " " + number(series.y[i]) + "\n";
      }
      s += "EOD\n";
      plot += (k ? ", " : "") + block + " using 1:2 with boxes title " + quoted(series.title);
      continue;
    }
    const bool bars = !series.low.empty() && series.low.size() == series.x.size();
    const bool sized = !bars && !series.point_size.empty() &&
                       series.point_size.size() == series.x.size();
    const std::string block = "$s" + std::to_string(k);
    s += block + " << EOD\n";
    for (size_t i = 0; i < series.x.size(); ++i) {
      s += number(series.x[i]) + " " + number(series.y[i]);
      if (bars) s += " " + number(series.low[i]) + " " + number(series.high[i]);
      if (sized) s += " " + number(series.point_size[i]);
      s += "\n";
    }
    s += "EOD\n";
    std::string style = bars ? (spec.lines ? "yerrorlines" : "yerrorbars")
                             : (spec.lines ? "linespoints" : "points");
    plot += (k ? ", " : "") + block + " using 1:2" + (bars ? ":3:4" : sized ? ":3" : "") +
            " with " + style + " pointtype 7" + (sized ? " pointsize variable" : "") +
            " title " + quoted(series.title);
  }
  if (spec.series.empty()) plot += "NaN notitle";
  return s + plot + "\n";
}

void render_svg(const PlotSpec& spec, const std::string& svg_path) {
  // gnuplot draws into a scratch file, which is then written like every other file: gnuplot
  // itself does not say when a full disk cut its output short.
  const std::string drawn = svg_path + ".gnuplot." + std::to_string(::getpid());
  std::unique_ptr<FILE, int (*)(FILE*)> gnuplot(popen("gnuplot > /dev/null", "w"), pclose);
  if (!gnuplot) throw std::runtime_error("cannot start gnuplot");
  const std::string script = gnuplot_script(spec, drawn);
  std::fwrite(script.data(), 1, script.size(), gnuplot.get());
  int status = pclose(gnuplot.release());
  const std::string svg = read_file(drawn).value_or("");
  std::remove(drawn.c_str());
  if (status != 0) {
    throw std::runtime_error(
        "gnuplot failed drawing " + svg_path + " (exit status " + std::to_string(status) +
        (WEXITSTATUS(status) == 127 ? "): install it with apt-get install gnuplot-nox" : ")"));
  }
  if (svg.find("</svg>") == std::string::npos) {
    throw WriteError(svg_path + ": cannot write: gnuplot's drawing is incomplete (disk full?)");
  }
  write_file_atomically(svg_path, svg);
}

}  // namespace qb
