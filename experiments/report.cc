#include "experiments/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "base/atomic_file.h"
#include "experiments/compare.h"
#include "experiments/metrics.h"
#include "experiments/record_log.h"
#include "experiments/run_tables.h"
#include "experiments/table.h"

namespace qb {

namespace {

namespace fs = std::filesystem;

int64_t smallest(const std::vector<Record>& records, int64_t Point::*field) {
  int64_t best = INT64_MAX;
  for (const Record& r : records) best = std::min(best, r.point.*field);
  return best;
}

/// The variant without its calibration size: "graph histogram/per_channel onednn".
std::string family(const Record& record) {
  const Point& p = record.point;
  if (!p.int8()) return p.variant;
  std::string text = p.variant + " " + p.observer + "/" + p.weights;
  if (p.mapping != "global") text += " " + p.mapping;
  return text + " " + p.engine;
}

/// Whether the records span several models, whose names then prefix the series titles.
bool several_models(const std::vector<Record>& records) {
  std::set<std::string> models;
  for (const Record& record : records) models.insert(record.point.model);
  return models.size() > 1;
}

std::string model_prefix(bool several, const Record& r) { return several ? r.point.model + " " : ""; }

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}


/// The measured records without broken ones: a broken int8 model's latency is not a result.
std::vector<Record> unbroken(const std::vector<Record>& measured) {
  std::vector<Record> kept;
  for (const Record& record : measured) {
    if (!record.broken()) kept.push_back(record);
  }
  return kept;
}

/// What publishing shows.
std::vector<Record> publishable(const std::vector<Record>& records) { return unbroken(latest_measured(records)); }

}  // namespace

std::vector<std::pair<std::string, PlotSpec>> run_plots(const std::vector<Record>& all) {
  // A broken int8 model's latency is not a result: tables mark it, latency plots leave it
  // out. Its accuracy is one (an uncalibrated model's is the point of calibrating).
  const std::vector<Record> measured = latest_measured(all);
  const std::vector<Record> records = unbroken(measured);
  const bool several = several_models(records);
  std::vector<std::pair<std::string, PlotSpec>> plots;
  if (records.empty()) return plots;
  const int64_t threads = smallest(records, &Point::threads);
  const int64_t batch = smallest(records, &Point::batch_size);
  const bool accuracy = records.front().accuracy.has_value();
  const bool latency = records.front().latency.has_value();

  if (accuracy) {
    // Accuracy against calibration samples, one line per variant family.
    // Uncalibrated models (0 samples) included: how far below they sit is the point of
    // calibrating.
    std::set<int64_t> sample_set;
    for (const Record& r : measured) {
      if (r.point.samples >= 0) sample_set.insert(r.point.samples);
    }
    if (!sample_set.empty()) {
      std::vector<int64_t> samples(sample_set.begin(), sample_set.end());
      PlotSpec spec;
      spec.title = "Top-1 against calibration samples (mean and 95% interval over seeds)";
      spec.x_label = "calibration samples";
      spec.y_label = "top-1 (%)";
      for (int64_t s : samples) spec.x_tics.push_back(std::to_string(s));
      std::map<std::string, Series> series;
      std::vector<std::string> order;
      for (const Record& r : measured) {
        const Point& p = r.point;
        if (p.samples < 0 || p.threads != threads || p.batch_size != batch || !r.accuracy) continue;
        const std::string name = model_prefix(several, r) + family(r);
        if (!series.count(name)) order.push_back(name);
        Series& s = series[name];
        s.title = name;
        const auto position = std::find(samples.begin(), samples.end(), p.samples);
        s.x.push_back(static_cast<double>(position - samples.begin()));
        s.y.push_back(r.accuracy->top1.mean);
        s.low.push_back(r.accuracy->top1.ci95_low);
        s.high.push_back(r.accuracy->top1.ci95_high);
      }
      for (const Record& r : records) {
        if (r.point.variant != "fp32" || r.point.threads != threads || !r.accuracy) continue;
        Series fp32;
        fp32.title = model_prefix(several, r) + "fp32";
        const double top1 = r.accuracy->top1.mean;
        fp32.x = {0.0, static_cast<double>(samples.size() - 1)};
        fp32.y = {top1, top1};
        spec.series.push_back(fp32);
        break;
      }
      for (const std::string& name : order) spec.series.push_back(series[name]);
      plots.emplace_back("accuracy_vs_samples", spec);
    }
  }

  // Each variant family's largest calibration size: the model its latency and SQNR stand for.
  std::map<std::string, int64_t> largest_samples;
  for (const Record& r : records) {
    const std::string name = model_prefix(several, r) + family(r);
    auto it = largest_samples.find(name);
    if (it == largest_samples.end() || r.point.samples > it->second) largest_samples[name] = r.point.samples;
  }

  // Latency against threads, one line per variant family at its largest calibration size.
  if (latency) {
    PlotSpec spec;
    spec.title = "Latency against intra-op threads (median, batch " + std::to_string(batch) + ")";
    spec.x_label = "threads";
    spec.y_label = "latency per batch (ms)";
    std::map<std::string, Series> series;
    std::vector<std::string> order;
    for (const Record& r : records) {
      const std::string name = model_prefix(several, r) + family(r);
      if (r.point.batch_size != batch || r.point.samples != largest_samples[name] || !r.latency) continue;
      if (!series.count(name)) order.push_back(name);
      Series& s = series[name];
      s.title = name;
      s.x.push_back(static_cast<double>(r.point.threads));
      s.y.push_back(r.latency->median_ms);
    }
    for (const std::string& name : order) spec.series.push_back(series[name]);
    plots.emplace_back("latency_vs_threads", spec);
  }

  // The trade-off: latency against top-1 (or against size without accuracy), one cloud per
  // kind of model.
  if (latency) {
    PlotSpec spec;
    spec.lines = false;
    spec.x_label = "latency per batch (ms, " + std::to_string(threads) + " thread(s), batch " +
                   std::to_string(batch) + ")";
    spec.title = accuracy ? "Trade-off: latency, top-1 and size (point area ~ model size)"
                          : "Trade-off: latency and size";
    spec.y_label = accuracy ? "top-1 (%)" : "size (MB)";
    std::map<std::string, Series> series;
    std::vector<std::string> order;
    for (const Record& r : records) {
      const Point& p = r.point;
      if (p.threads != threads || p.batch_size != batch || !r.latency || !r.size_bytes) continue;
      // Uncalibrated models sit far below the others and would flatten the plot.
      if (accuracy && (p.samples == 0 || !r.accuracy)) continue;
      const std::string name = model_prefix(several, r) + p.variant;
      if (!series.count(name)) order.push_back(name);
      Series& s = series[name];
      s.title = name;
      s.x.push_back(r.latency->median_ms);
      s.y.push_back(accuracy ? r.accuracy->top1.mean : static_cast<double>(*r.size_bytes) / 1e6);
      if (accuracy) s.point_size.push_back(static_cast<double>(*r.size_bytes));
    }
    // Point area proportional to model size, the largest model drawn at pointsize 3.
    double largest = 0.0;
    for (const auto& [name, s] : series) {
      for (double bytes : s.point_size) largest = std::max(largest, bytes);
    }
    for (auto& [name, s] : series) {
      for (double& size : s.point_size) size = 3.0 * std::sqrt(size / largest);
    }
    for (const std::string& name : order) spec.series.push_back(series[name]);
    plots.emplace_back("tradeoff", spec);
  }

  // Per-layer SQNR (trust.sqnr_db) of each int8 family at its largest calibration size, for
  // the families whose layers are the first one's (eager and graph name theirs alike).
  {
    PlotSpec spec;
    spec.title = "Per-layer SQNR against fp32, on calibration batches";
    spec.x_label = "layer, in graph order";
    spec.y_label = "SQNR (dB)";
    std::set<std::string> seen;
    for (const Record& r : records) {
      const Point& p = r.point;
      const std::string name = model_prefix(several, r) + family(r);
      if (!r.trust || r.trust->sqnr_db.empty() || p.threads != threads || p.batch_size != batch ||
          p.samples != largest_samples[name] || !seen.insert(name).second) {
        continue;
      }
      std::vector<std::string> layers;
      for (const LayerSqnrRecord& layer : r.trust->sqnr_db) layers.push_back(layer.node);
      if (spec.x_tics.empty()) spec.x_tics = layers;
      if (layers != spec.x_tics) continue;
      Series s;
      s.title = name;
      for (size_t i = 0; i < layers.size(); ++i) {
        const double db = r.trust->sqnr_db[i].db;
        if (!std::isfinite(db)) continue;  // the layer is exact
        s.x.push_back(static_cast<double>(i));
        s.y.push_back(db);
      }
      spec.series.push_back(s);
    }
    if (!spec.series.empty()) plots.emplace_back("layer_sqnr", spec);
  }
  return plots;
}

nlohmann::json history_entry(const std::string& run, const std::vector<Record>& all) {
  const std::vector<Record> records = latest_measured(all);
  const bool several = several_models(records);
  nlohmann::json points = nlohmann::json::object();
  std::string date;
  for (const Record& r : records) {
    date = std::max(date, r.provenance.environment.machine.date_utc);
    nlohmann::json point = {{"label", model_prefix(several, r) + r.label + ", " +
                                          std::to_string(r.point.threads) + "t, batch " +
                                          std::to_string(r.point.batch_size)}};
    for (const Metric& m : metrics()) {
      const std::optional<double> value = m.value(r);
      point[m.key] = value ? nlohmann::json(*value) : nlohmann::json();
    }
    points[r.config_hash] = point;
  }
  const Environment env = records.empty() ? Environment() : records.front().provenance.environment.machine;
  return {{"run", run},
          {"date_utc", date},
          {"git_revision", env.git_revision},
          {"libtorch_version", env.libtorch_version},
          {"points", points}};
}

void append_history(const std::string& path, const std::string& run,
                    const std::vector<Record>& records) {
  std::vector<nlohmann::json> history = read_records(path);
  history.erase(std::remove_if(history.begin(), history.end(),
                               [&](const nlohmann::json& e) { return e.value("run", "") == run; }),
                history.end());
  history.push_back(history_entry(run, records));
  if (!fs::path(path).parent_path().empty()) fs::create_directories(fs::path(path).parent_path());
  std::string text;
  for (const auto& entry : history) text += entry.dump() + "\n";
  write_file_atomically(path, text);
}

std::vector<std::pair<std::string, PlotSpec>> history_plots(
    const std::vector<nlohmann::json>& history) {
  std::vector<std::pair<std::string, PlotSpec>> plots;
  if (history.empty()) return plots;
  for (const Metric& m : metrics()) {
    PlotSpec spec;
    spec.title = m.header + " per run";
    spec.x_label = "run";
    spec.y_label = m.header;
    std::map<std::string, Series> series;
    std::vector<std::string> order;
    for (size_t i = 0; i < history.size(); ++i) {
      spec.x_tics.push_back(history[i].value("run", std::to_string(i)));
      for (const auto& [hash, point] : history[i].at("points").items()) {
        // Entries written before a metric existed lack it.
        if (point.value(m.key, nlohmann::json()).is_null()) continue;
        if (!series.count(hash)) order.push_back(hash);
        Series& s = series[hash];
        s.title = point.at("label").get<std::string>();
        s.x.push_back(static_cast<double>(i));
        s.y.push_back(point.at(m.key).get<double>() * m.display_scale);
      }
    }
    if (order.empty()) continue;
    for (const std::string& hash : order) spec.series.push_back(series[hash]);
    plots.emplace_back("history_" + m.key, spec);
  }
  return plots;
}

std::string headline(const std::vector<Record>& records) {
  const std::vector<TableRow> rows = table_rows(publishable(records));
  const TableRow* best = nullptr;
  auto top1 = [](const TableRow& row) { return metric("top1_percent").value(row.record); };
  for (const TableRow& row : rows) {
    if (!row.speedup || !row.record.point.int8()) continue;
    const bool better = !best || (top1(row) && top1(*best) && *top1(row) != *top1(*best)
                                      ? *top1(row) > *top1(*best)
                                      : *row.speedup > *best->speedup);
    if (better) best = &row;
  }
  if (!best) return "";
  const Record& int8 = best->record;
  const Record* fp32 = nullptr;
  for (const TableRow& row : rows) {
    const Point& p = row.record.point;
    if (p.model == int8.point.model && p.threads == int8.point.threads &&
        p.batch_size == int8.point.batch_size && p.isa == int8.point.isa &&
        p.runtime == int8.point.runtime && p.variant == "fp32") {
      fp32 = &row.record;
    }
  }
  std::string text = "Best int8 point: " + int8.point.model + " " + int8.label + " (" +
                     std::to_string(int8.point.threads) + " thread(s), batch " +
                     std::to_string(int8.point.batch_size) + "): ";
  if (int8.accuracy && fp32 && fp32->accuracy) {
    const double ours = int8.accuracy->top1.mean;
    const double theirs = fp32->accuracy->top1.mean;
    text += "top-1 " + format_number("%.2f", ours) + "% against fp32's " + format_number("%.2f", theirs) +
            "% (" + format_number("%+.2f", ours - theirs) + " points), ";
  }
  text += format_number("%.2f", *best->speedup) + "x faster";
  if (fp32 && int8.size_bytes && fp32->size_bytes && *int8.size_bytes > 0) {
    text += ", " + format_number("%.2f", static_cast<double>(*fp32->size_bytes) / *int8.size_bytes) +
            "x smaller";
  }
  const bool noisy = int8.latency->noisy || (fp32 && fp32->latency && fp32->latency->noisy);
  return text + " than fp32" + (noisy ? " (latency noisy)" : "") + ".";
}

std::vector<std::pair<std::string, std::string>> provenance_summary(const std::vector<Record>& all) {
  const std::vector<Record> records = latest_measured(all);
  if (records.empty()) return {};
  const Record& first = records.front();
  const Provenance& p = first.provenance;
  const Environment& env = p.environment.machine;
  std::string first_date = env.date_utc;
  std::string last_date = first_date;
  for (const Record& r : records) {
    const std::string& d = r.provenance.environment.machine.date_utc;
    first_date = std::min(first_date, d);
    last_date = std::max(last_date, d);
  }
  std::string revision = env.git_revision.empty() ? "unknown" : env.git_revision;
  if (env.git_dirty) revision += " (with uncommitted changes)";
  std::vector<std::pair<std::string, std::string>> out = {
      {"experiment", first.experiment + " (" + fs::path(p.experiment_file).filename().string() +
                         ", sha256 " + p.experiment_sha256.substr(0, 12) + ")"},
      {"data", p.data + " (fingerprint " + p.data_fingerprint + ")"},
      {"git revision", revision},
      {"LibTorch / OpenCV", env.libtorch_version + " / " + env.opencv_version},
      {"CPU", env.cpu_model + ", " + std::to_string(env.cores) + " cores"},
      {"measured", first_date + " to " + last_date},
  };
  if (!p.checkpoint_sha256.empty()) {
    // The weights' file: a checkpoint, or the TorchScript file that holds the whole model.
    const bool torchscript = !p.torchscript.empty();
    out.insert(out.begin() + 1,
               {torchscript ? "torchscript" : "checkpoint",
                fs::path(torchscript ? p.torchscript : p.checkpoint).filename().string() + " (sha256 " +
                    p.checkpoint_sha256.substr(0, 12) + ")"});
  }
  return out;
}

std::string html_report(const std::string& title, const std::vector<Record>& records,
                        const std::vector<std::string>& plot_files) {
  std::ostringstream html;
  html << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>"
       << html_escape(title) << "</title>\n<style>\n"
       << "body { font-family: sans-serif; margin: 2em auto; max-width: 75em; color: #222; }\n"
       << "table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }\n"
       << "th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; }\n"
       << "td { white-space: nowrap; }\n"
       << "td.n { text-align: right; font-variant-numeric: tabular-nums; }\n"
       << "th { background: #eee; }\n dl { display: grid; grid-template-columns: max-content "
          "auto; gap: 0.2em 1em; }\n dt { font-weight: bold; }\n"
       << "img { display: block; margin: 1em 0; max-width: 100%; }\n</style>\n</head>\n<body>\n"
       << "<h1>" << html_escape(title) << "</h1>\n";
  const std::string best = headline(records);
  if (!best.empty()) html << "<p><strong>" << html_escape(best) << "</strong></p>\n";
  html << "<dl>\n";
  for (const auto& [key, value] : provenance_summary(records)) {
    html << "<dt>" << html_escape(key) << "</dt><dd>" << html_escape(value) << "</dd>\n";
  }
  html << "</dl>\n<table>\n<tr><th>model</th><th>variant</th><th>threads</th><th>batch</th>";
  for (const Metric& m : metrics()) html << "<th>" << html_escape(m.header) << "</th>";
  html << "<th>speedup</th></tr>\n";
  // The Markdown table's cells, so both renderings agree.
  std::istringstream markdown(markdown_table(table_rows(records)));
  std::string line;
  int row = 0;
  while (std::getline(markdown, line)) {
    if (row++ < 2) continue;  // header and rule
    html << "<tr>";
    std::istringstream cells(line.substr(1));
    std::string cell;
    int column = 0;
    while (std::getline(cells, cell, '|')) {
      const size_t a = cell.find_first_not_of(' ');
      const size_t b = cell.find_last_not_of(' ');
      cell = a == std::string::npos ? "" : cell.substr(a, b - a + 1);
      html << (column++ < 2 ? "<td>" : "<td class=\"n\">") << html_escape(cell) << "</td>";
    }
    html << "</tr>\n";
  }
  html << "</table>\n";
  for (const std::string& plot : plot_files) {
    html << "<img src=\"" << html_escape(plot) << "\" alt=\"" << html_escape(plot) << "\">\n";
  }
  html << "</body>\n</html>\n";
  return html.str();
}

std::vector<std::string> write_report(const std::string& out_dir, const std::string& title,
                                      const std::vector<Record>& records,
                                      const std::vector<nlohmann::json>& history,
                                      const std::vector<TunedPoint>& tuning) {
  fs::create_directories(out_dir + "/plots");
  write_run_tables(out_dir, records);
  std::vector<std::string> written = {out_dir + "/table.md", out_dir + "/table.csv",
                                      out_dir + "/benchmark.json"};
  std::vector<std::pair<std::string, PlotSpec>> plots = run_plots(records);
  for (auto& plot : history_plots(history)) plots.push_back(std::move(plot));
  for (auto& plot : tuning_plots(tuning)) plots.push_back(std::move(plot));
  std::vector<std::string> relative;
  for (const auto& [stem, spec] : plots) {
    const std::string path = out_dir + "/plots/" + stem + ".svg";
    render_svg(spec, path);
    written.push_back(path);
    relative.push_back("plots/" + stem + ".svg");
  }
  write_file_atomically(out_dir + "/report.html", html_report(title, records, relative));
  written.push_back(out_dir + "/report.html");
  return written;
}

std::vector<TunedPoint> load_tuning(const std::string& path) {
  std::string fallback = path + "/tuning/fallback.jsonl";
  std::string sensitivity = path + "/tuning/sensitivity.jsonl";
  if (!fs::is_directory(path)) {
    const std::string stem = fs::path(path).replace_extension().string();
    fallback = stem + ".fallback.jsonl";
    sensitivity = stem + ".sensitivity.jsonl";
  }
  return fs::exists(fallback) ? read_tuned_points(fallback, sensitivity) : std::vector<TunedPoint>();
}

std::vector<std::pair<std::string, PlotSpec>> tuning_plots(const std::vector<TunedPoint>& tuning) {
  std::vector<std::pair<std::string, PlotSpec>> plots;
  for (size_t k = 0; k < tuning.size(); ++k) {
    if (tuning[k].layers.empty()) continue;
    plots.emplace_back("sensitivity-" + std::to_string(k + 1),
                       sensitivity_plot(tuning[k].title(), tuning[k].layers, tuning[k].fallback.sensitivity_int8));
  }
  return plots;
}

PublishedRun load_published_run(const std::string& name, const std::string& path) {
  return {name, load_run_records(path), load_tuning(path)};
}

std::string tuning_markdown(const TunedPoint& point, size_t top, const std::string& plot_file) {
  const FallbackRecord& f = point.fallback;
  std::string kept;
  for (const std::string& layer : f.fp32_layers) kept += (kept.empty() ? "`" : ", `") + layer + "`";
  const std::string budget = f.max_drop ? format_number("%g", *f.max_drop) + " points"
                                        : format_number("%g", 100 * f.max_relative_drop.value_or(0)) + "%";
  auto row = [](const std::string& what, const TunedAccuracies& a) {
    return "| " + what + " | " + format_number("%.2f", a.fp32_top1_percent) + " | " +
           format_number("%.2f", a.int8_top1_percent) + " | " + format_number("%.2f", a.tuned_top1_percent) + " |\n";
  };
  std::string out = "### Tuning: " + point.title() + "\n\n";
  out += "Fallback to fp32 within " + budget + " of fp32's top-1 on " + std::to_string(f.tuning.examples) +
         " training images (" + (f.met ? "met" : "NOT met") + "): " + std::to_string(f.fp32_layers.size()) + " of " +
         std::to_string(f.layers) + " quantized layers kept in fp32" + (kept.empty() ? "" : " (" + kept + ")") +
         ".\n\n";
  out += "| top-1 % | fp32 | int8 | tuned |\n| --- | ---: | ---: | ---: |\n";
  out += row("tuning subset (floor " + format_number("%.2f", f.floor_percent) + ")", f.tuning);
  out += row("evaluation set (" + std::to_string(f.evaluation.examples) + ", first seed)", f.evaluation) + "\n";
  out += "Latency (" + std::to_string(f.threads) + " thread(s), batch " + std::to_string(f.batch_size) +
         ", each in a fresh process): tuned " + format_number("%.3f", f.tuned_median_ms) + " ms against int8's " +
         format_number("%.3f", f.int8_median_ms) + " ms (" + format_number("%.2f", f.tuned_over_int8()) + "x" +
         (f.latency_noisy ? ", noisy" : "") + ").\n\n";
  if (!point.layers.empty()) {
    std::vector<LayerSensitivity> order = ranked(point.layers, f.sensitivity_int8, f.sensitivity_examples);
    if (order.size() > top) order.resize(top);
    out += "The " + std::to_string(order.size()) + " most sensitive layers (on " +
           std::to_string(f.sensitivity_examples) + " test images):\n\n" +
           sensitivity_table(order, f.sensitivity_int8, f.sensitivity_fp32) + "\n![Layer sensitivity: " +
           point.title() + "](" + plot_file + ")\n\n";
  }
  return out;
}

std::string published_markdown(const std::vector<PublishedRun>& runs) {
  std::string out =
      "# Published results\n\n"
      "Tables and plots of the sweeps below as measured on this project's reference machine.\n"
      "Regenerate everything with `bash tools/publish_results.sh` (it resumes the sweeps, so\n"
      "only missing points are measured, then rewrites this file and `plots/` with\n"
      "`bazel run //experiments:report -- --publish results ...`). Latency is the median of\n"
      "Google Benchmark repetitions per batch, each point measured in a fresh process and\n"
      "checked for contention (\"noisy\" marks one that stayed contended); speedup is against\n"
      "the fp32 row (its deployment form: BatchNorm folded, oneDNN convolutions) of the same\n"
      "model, threads, batch size and ISA; int8 models whose output is too far from fp32's are\n"
      "listed as broken instead of shown; accuracy intervals are 95% over calibration seeds.\n";
  for (const auto& [name, records, tuning] : runs) {
    out += "\n## " + name + "\n\n";
    const std::string notes = records.empty() ? "" : records.back().notes;
    if (!notes.empty()) out += notes + "\n\n";
    const std::string best = headline(records);
    if (!best.empty()) out += "**" + best + "**\n\n";
    for (const auto& [key, value] : provenance_summary(records)) {
      out += "- " + key + ": " + value + "\n";
    }
    out += "\n" + markdown_table(table_rows(publishable(records))) + "\n";
    std::string left_out;
    for (const Record& record : latest_measured(records)) {
      if (!record.broken()) continue;
      left_out += "- " + record.describe() + ": output SQNR " +
                  format_number("%.1f", *record.trust->output_sqnr_db) + " dB against fp32";
      if (record.accuracy) {
        const Summary& top1 = record.accuracy->top1;
        left_out += ", top-1 " + format_number("%.2f", top1.mean) + "%";
        if (top1.n > 1) {
          left_out += " [" + format_number("%.2f", top1.ci95_low) + ", " + format_number("%.2f", top1.ci95_high) + "]";
        }
      }
      left_out += "\n";
    }
    if (!left_out.empty()) {
      out += "Left out as broken (int8 output too far from fp32's, trust.broken_below_db):\n\n" +
             left_out + "\n";
    }
    for (const auto& [stem, spec] : run_plots(records)) {
      out += "![" + spec.title + "](plots/" + name + "-" + stem + ".svg)\n\n";
    }
    for (size_t k = 0; k < tuning.size(); ++k) {
      out += tuning_markdown(tuning[k], 10, "plots/" + name + "-sensitivity-" + std::to_string(k + 1) + ".svg");
    }
  }
  return out;
}

std::vector<std::string> write_published(const std::string& dir, const std::vector<PublishedRun>& runs) {
  fs::create_directories(dir + "/plots");
  std::vector<std::string> written;
  for (const auto& [name, records, tuning] : runs) {
    std::vector<std::pair<std::string, PlotSpec>> plots = run_plots(records);
    for (auto& plot : tuning_plots(tuning)) plots.push_back(std::move(plot));
    for (const auto& [stem, spec] : plots) {
      const std::string path = dir + "/plots/" + name + "-" + stem + ".svg";
      render_svg(spec, path);
      written.push_back(path);
    }
  }
  write_file_atomically(dir + "/README.md", published_markdown(runs));
  written.push_back(dir + "/README.md");
  return written;
}

}  // namespace qb
