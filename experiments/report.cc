#include "experiments/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "experiments/records.h"
#include "experiments/sweep.h"
#include "experiments/table.h"
#include "experiments/table.h"

namespace qb {

namespace {

namespace fs = std::filesystem;

const nlohmann::json& point_of(const nlohmann::json& record) { return record.at("point"); }

bool has_accuracy(const nlohmann::json& record) { return !record.at("accuracy").is_null(); }

int64_t smallest(const std::vector<nlohmann::json>& records, const char* field) {
  int64_t best = INT64_MAX;
  for (const auto& r : records) best = std::min(best, point_of(r).at(field).get<int64_t>());
  return best;
}

/// The variant without its calibration size: "graph histogram/per_channel onednn".
std::string family(const nlohmann::json& record) {
  const nlohmann::json& p = point_of(record);
  if (p.at("variant") == "fp32" || p.at("variant") == "fp32_as_built") return p.at("variant");
  std::string text = p.at("variant").get<std::string>() + " " + p.at("observer").get<std::string>() +
                     "/" + p.at("weights").get<std::string>();
  if (p.at("mapping") != "global") text += " " + p.at("mapping").get<std::string>();
  return text + " " + p.at("engine").get<std::string>();
}

/// Whether the records span several models, whose names then prefix the series titles.
bool several_models(const std::vector<nlohmann::json>& records) {
  std::set<std::string> models;
  for (const auto& record : records) models.insert(point_of(record).at("model").get<std::string>());
  return models.size() > 1;
}

std::string model_prefix(bool several, const nlohmann::json& r) {
  return several ? point_of(r).at("model").get<std::string>() + " " : "";
}

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

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path + ".tmp", std::ios::binary) << text;
  fs::rename(path + ".tmp", path);
}


bool is_broken(const nlohmann::json& record) {
  const nlohmann::json trust = record.value("trust", nlohmann::json());
  return trust.is_object() && trust.value("broken", false);
}

/// What publishing shows: a broken int8 model's latency is not a result.
std::vector<nlohmann::json> publishable(const std::vector<nlohmann::json>& records) {
  std::vector<nlohmann::json> kept;
  for (const nlohmann::json& record : latest_measured(records)) {
    if (!is_broken(record)) kept.push_back(record);
  }
  return kept;
}

}  // namespace

std::vector<std::pair<std::string, PlotSpec>> run_plots(const std::vector<nlohmann::json>& all) {
  // A broken int8 model's latency is not a result: tables mark it, latency plots leave it
  // out. Its accuracy is one (an uncalibrated model's is the point of calibrating).
  const std::vector<nlohmann::json> measured = latest_measured(all);
  const std::vector<nlohmann::json> records = publishable(all);
  const bool several = several_models(records);
  std::vector<std::pair<std::string, PlotSpec>> plots;
  if (records.empty()) return plots;
  const int64_t threads = smallest(records, "threads");
  const int64_t batch = smallest(records, "batch_size");
  const bool accuracy = has_accuracy(records.front());

  if (accuracy) {
    // Accuracy against calibration samples, one line per variant family.
    // Uncalibrated models (0 samples) included: how far below they sit is the point of
    // calibrating.
    std::set<int64_t> sample_set;
    for (const auto& r : measured) {
      if (point_of(r).value("samples", int64_t{-1}) >= 0) {
        sample_set.insert(point_of(r)["samples"].get<int64_t>());
      }
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
      for (const auto& r : measured) {
        const nlohmann::json& p = point_of(r);
        if (p.value("samples", int64_t{-1}) < 0 || p["threads"] != threads ||
            p["batch_size"] != batch) {
          continue;
        }
        const std::string name = model_prefix(several, r) + family(r);
        if (!series.count(name)) order.push_back(name);
        Series& s = series[name];
        s.title = name;
        const auto position = std::find(samples.begin(), samples.end(), p["samples"].get<int64_t>());
        s.x.push_back(static_cast<double>(position - samples.begin()));
        s.y.push_back(r["accuracy"]["top1"]["mean"].get<double>());
        s.low.push_back(r["accuracy"]["top1"]["ci95"][0].get<double>());
        s.high.push_back(r["accuracy"]["top1"]["ci95"][1].get<double>());
      }
      for (const auto& r : records) {
        if (point_of(r)["variant"] != "fp32" || point_of(r)["threads"] != threads) continue;
        Series fp32;
        fp32.title = model_prefix(several, r) + "fp32";
        const double top1 = r["accuracy"]["top1"]["mean"].get<double>();
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
  for (const auto& r : records) {
    const std::string name = model_prefix(several, r) + family(r);
    const int64_t samples = point_of(r).value("samples", int64_t{-1});
    auto it = largest_samples.find(name);
    if (it == largest_samples.end() || samples > it->second) largest_samples[name] = samples;
  }

  // Latency against threads, one line per variant family at its largest calibration size.
  {
    PlotSpec spec;
    spec.title = "Latency against intra-op threads (median, batch " + std::to_string(batch) + ")";
    spec.x_label = "threads";
    spec.y_label = "latency per batch (ms)";
    std::map<std::string, Series> series;
    std::vector<std::string> order;
    for (const auto& r : records) {
      const nlohmann::json& p = point_of(r);
      const std::string name = model_prefix(several, r) + family(r);
      if (p["batch_size"] != batch || p.value("samples", int64_t{-1}) != largest_samples[name]) {
        continue;
      }
      if (!series.count(name)) order.push_back(name);
      Series& s = series[name];
      s.title = name;
      s.x.push_back(p["threads"].get<double>());
      s.y.push_back(r["latency"]["median_ms"].get<double>());
    }
    for (const std::string& name : order) spec.series.push_back(series[name]);
    plots.emplace_back("latency_vs_threads", spec);
  }

  // The trade-off: latency against top-1 (or against size without accuracy), one cloud per
  // kind of model.
  {
    PlotSpec spec;
    spec.lines = false;
    spec.x_label = "latency per batch (ms, " + std::to_string(threads) + " thread(s), batch " +
                   std::to_string(batch) + ")";
    spec.title = accuracy ? "Trade-off: latency, top-1 and size (point area ~ model size)"
                          : "Trade-off: latency and size";
    spec.y_label = accuracy ? "top-1 (%)" : "size (MB)";
    std::map<std::string, Series> series;
    std::vector<std::string> order;
    for (const auto& r : records) {
      const nlohmann::json& p = point_of(r);
      if (p["threads"] != threads || p["batch_size"] != batch) continue;
      // Uncalibrated models sit far below the others and would flatten the plot.
      if (accuracy && p.value("samples", int64_t{-1}) == 0) continue;
      const std::string name = model_prefix(several, r) + p["variant"].get<std::string>();
      if (!series.count(name)) order.push_back(name);
      Series& s = series[name];
      s.title = name;
      s.x.push_back(r["latency"]["median_ms"].get<double>());
      s.y.push_back(accuracy ? r["accuracy"]["top1"]["mean"].get<double>()
                             : r["size_bytes"].get<double>() / 1e6);
      if (accuracy) s.point_size.push_back(r["size_bytes"].get<double>());
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
    for (const auto& r : records) {
      const nlohmann::json& p = point_of(r);
      const nlohmann::json trust = r.value("trust", nlohmann::json());
      const std::string name = model_prefix(several, r) + family(r);
      if (!trust.is_object() || !trust.contains("sqnr_db") || p["threads"] != threads ||
          p["batch_size"] != batch || p.value("samples", int64_t{-1}) != largest_samples[name] ||
          !seen.insert(name).second) {
        continue;
      }
      std::vector<std::string> layers;
      for (const auto& layer : trust["sqnr_db"]) layers.push_back(layer["node"].get<std::string>());
      if (spec.x_tics.empty()) spec.x_tics = layers;
      if (layers != spec.x_tics) continue;
      Series s;
      s.title = name;
      for (size_t i = 0; i < layers.size(); ++i) {
        const nlohmann::json& db = trust["sqnr_db"][i]["db"];
        if (!db.is_number()) continue;  // "inf": the layer is exact
        s.x.push_back(static_cast<double>(i));
        s.y.push_back(db.get<double>());
      }
      spec.series.push_back(s);
    }
    if (!spec.series.empty()) plots.emplace_back("layer_sqnr", spec);
  }
  return plots;
}

nlohmann::json history_entry(const std::string& run, const std::vector<nlohmann::json>& all) {
  const std::vector<nlohmann::json> records = latest_measured(all);
  const bool several = several_models(records);
  nlohmann::json points = nlohmann::json::object();
  std::string date;
  for (const auto& r : records) {
    const nlohmann::json env = r.at("provenance").at("environment");
    date = std::max(date, env.value("date_utc", std::string()));
    points[r.at("config_hash").get<std::string>()] = {
        {"label", model_prefix(several, r) + r.at("label").get<std::string>() + ", " +
                      std::to_string(point_of(r)["threads"].get<int64_t>()) + "t, batch " +
                      std::to_string(point_of(r)["batch_size"].get<int64_t>())},
        {"latency_ms", r["latency"]["median_ms"]},
        {"top1_percent", has_accuracy(r) ? r["accuracy"]["top1"]["mean"] : nlohmann::json()},
        {"size_bytes", r["size_bytes"]}};
  }
  nlohmann::json env = records.empty() ? nlohmann::json::object()
                                       : records.front().at("provenance").at("environment");
  return {{"run", run},
          {"date_utc", date},
          {"git_revision", env.value("git_revision", "")},
          {"libtorch_version", env.value("libtorch_version", "")},
          {"points", points}};
}

void append_history(const std::string& path, const std::string& run,
                    const std::vector<nlohmann::json>& records) {
  std::vector<nlohmann::json> history = read_records(path);
  history.erase(std::remove_if(history.begin(), history.end(),
                               [&](const nlohmann::json& e) { return e.value("run", "") == run; }),
                history.end());
  history.push_back(history_entry(run, records));
  if (!fs::path(path).parent_path().empty()) fs::create_directories(fs::path(path).parent_path());
  std::string text;
  for (const auto& entry : history) text += entry.dump() + "\n";
  write_text(path, text);
}

std::vector<std::pair<std::string, PlotSpec>> history_plots(
    const std::vector<nlohmann::json>& history) {
  std::vector<std::pair<std::string, PlotSpec>> plots;
  if (history.empty()) return plots;
  const std::vector<std::pair<std::string, std::string>> metrics = {
      {"latency_ms", "median latency (ms)"}, {"top1_percent", "top-1 (%)"},
      {"size_bytes", "size (bytes)"}};
  for (const auto& [metric, label] : metrics) {
    PlotSpec spec;
    spec.title = label + " per run";
    spec.x_label = "run";
    spec.y_label = label;
    std::map<std::string, Series> series;
    std::vector<std::string> order;
    for (size_t i = 0; i < history.size(); ++i) {
      spec.x_tics.push_back(history[i].value("run", std::to_string(i)));
      for (const auto& [hash, point] : history[i].at("points").items()) {
        if (point.at(metric).is_null()) continue;
        if (!series.count(hash)) order.push_back(hash);
        Series& s = series[hash];
        s.title = point.at("label").get<std::string>();
        s.x.push_back(static_cast<double>(i));
        s.y.push_back(point.at(metric).get<double>());
      }
    }
    if (order.empty()) continue;
    for (const std::string& hash : order) spec.series.push_back(series[hash]);
    plots.emplace_back("history_" + metric, spec);
  }
  return plots;
}

std::string headline(const std::vector<nlohmann::json>& records) {
  const std::vector<TableRow> rows = table_rows(publishable(records));
  const TableRow* best = nullptr;
  for (const TableRow& row : rows) {
    if (!row.speedup || (row.point_variant != "eager" && row.point_variant != "graph")) continue;
    const bool better = !best || (row.top1 && best->top1 && row.top1->mean != best->top1->mean
                                      ? row.top1->mean > best->top1->mean
                                      : *row.speedup > *best->speedup);
    if (better) best = &row;
  }
  if (!best) return "";
  const TableRow* fp32 = nullptr;
  for (const TableRow& row : rows) {
    if (row.model == best->model && row.threads == best->threads &&
        row.batch_size == best->batch_size && row.isa == best->isa &&
        row.point_variant == "fp32") {
      fp32 = &row;
    }
  }
  std::string text = "Best int8 point: " + best->model + " " + best->variant + " (" +
                     std::to_string(best->threads) + " thread(s), batch " +
                     std::to_string(best->batch_size) + "): ";
  if (best->top1 && fp32 && fp32->top1) {
    text += "top-1 " + format_number("%.2f", best->top1->mean) + "% against fp32's " +
            format_number("%.2f", fp32->top1->mean) + "% (" +
            format_number("%+.2f", best->top1->mean - fp32->top1->mean) + " points), ";
  }
  text += format_number("%.2f", *best->speedup) + "x faster";
  if (fp32 && best->size_mb > 0) text += ", " + format_number("%.2f", fp32->size_mb / best->size_mb) + "x smaller";
  return text + " than fp32" + (best->noisy || (fp32 && fp32->noisy) ? " (latency noisy)" : "") + ".";
}

std::vector<std::pair<std::string, std::string>> provenance_summary(
    const std::vector<nlohmann::json>& all) {
  const std::vector<nlohmann::json> records = latest_measured(all);
  if (records.empty()) return {};
  const nlohmann::json& first = records.front();
  const nlohmann::json& p = first.at("provenance");
  const nlohmann::json& env = p.at("environment");
  std::string first_date = env.value("date_utc", "");
  std::string last_date = first_date;
  for (const auto& r : records) {
    const std::string d = r.at("provenance").at("environment").value("date_utc", "");
    first_date = std::min(first_date, d);
    last_date = std::max(last_date, d);
  }
  std::string revision = env.value("git_revision", "unknown");
  if (env.value("git_dirty", false)) revision += " (with uncommitted changes)";
  std::vector<std::pair<std::string, std::string>> out = {
      {"experiment", first.value("experiment", "") + " (" +
                         fs::path(p.value("experiment_file", "")).filename().string() +
                         ", sha256 " + p.value("experiment_sha256", "").substr(0, 12) + ")"},
      {"data", p.value("data", "") + " (fingerprint " + p.value("data_fingerprint", "") + ")"},
      {"git revision", revision},
      {"LibTorch / OpenCV", env.value("libtorch_version", "") + " / " +
                                env.value("opencv_version", "")},
      {"CPU", env.value("cpu_model", "") + ", " + std::to_string(env.value("cores", 0)) +
                  " cores"},
      {"measured", first_date + " to " + last_date},
  };
  if (!p.value("checkpoint_sha256", "").empty()) {
    // The weights' file: a checkpoint, or the TorchScript file that holds the whole model.
    const std::string source = p.contains("torchscript") ? "torchscript" : "checkpoint";
    out.insert(out.begin() + 1,
               {source, fs::path(p.value(source, "")).filename().string() + " (sha256 " +
                            p.value("checkpoint_sha256", "").substr(0, 12) + ")"});
  }
  return out;
}

std::string html_report(const std::string& title, const std::vector<nlohmann::json>& records,
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
  html << "</dl>\n<table>\n<tr><th>model</th><th>variant</th><th>threads</th><th>batch</th>"
          "<th>size MB</th><th>top-1 %</th><th>top-5 %</th><th>latency ms</th><th>speedup</th>"
          "</tr>\n";
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
                                      const std::vector<nlohmann::json>& records,
                                      const std::vector<nlohmann::json>& history) {
  fs::create_directories(out_dir + "/plots");
  write_run_tables(out_dir, records);
  std::vector<std::string> written = {out_dir + "/table.md", out_dir + "/table.csv",
                                      out_dir + "/benchmark.json"};
  std::vector<std::pair<std::string, PlotSpec>> plots = run_plots(records);
  for (auto& plot : history_plots(history)) plots.push_back(std::move(plot));
  std::vector<std::string> relative;
  for (const auto& [stem, spec] : plots) {
    const std::string path = out_dir + "/plots/" + stem + ".svg";
    render_svg(spec, path);
    written.push_back(path);
    relative.push_back("plots/" + stem + ".svg");
  }
  write_text(out_dir + "/report.html", html_report(title, records, relative));
  written.push_back(out_dir + "/report.html");
  return written;
}

std::string published_markdown(
    const std::vector<std::pair<std::string, std::vector<nlohmann::json>>>& runs) {
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
  for (const auto& [name, records] : runs) {
    out += "\n## " + name + "\n\n";
    const std::string notes = records.empty() ? "" : records.back().value("notes", "");
    if (!notes.empty()) out += notes + "\n\n";
    const std::string best = headline(records);
    if (!best.empty()) out += "**" + best + "**\n\n";
    for (const auto& [key, value] : provenance_summary(records)) {
      out += "- " + key + ": " + value + "\n";
    }
    out += "\n" + markdown_table(table_rows(publishable(records))) + "\n";
    std::string left_out;
    for (const TableRow& row : table_rows(records)) {
      if (!row.broken) continue;
      left_out += "- " + row.model + " " + row.variant + ", " + std::to_string(row.threads) +
                  " thread(s), batch " + std::to_string(row.batch_size) + ": output SQNR " +
                  format_number("%.1f", *row.output_sqnr_db) + " dB against fp32\n";
    }
    if (!left_out.empty()) {
      out += "Left out as broken (int8 output too far from fp32's, trust.broken_below_db):\n\n" +
             left_out + "\n";
    }
    for (const auto& [stem, spec] : run_plots(records)) {
      out += "![" + spec.title + "](plots/" + name + "-" + stem + ".svg)\n\n";
    }
  }
  return out;
}

std::vector<std::string> write_published(
    const std::string& dir,
    const std::vector<std::pair<std::string, std::vector<nlohmann::json>>>& runs) {
  fs::create_directories(dir + "/plots");
  std::vector<std::string> written;
  for (const auto& [name, records] : runs) {
    for (const auto& [stem, spec] : run_plots(records)) {
      const std::string path = dir + "/plots/" + name + "-" + stem + ".svg";
      render_svg(spec, path);
      written.push_back(path);
    }
  }
  write_text(dir + "/README.md", published_markdown(runs));
  written.push_back(dir + "/README.md");
  return written;
}

}  // namespace qb
