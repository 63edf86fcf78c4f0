#include "experiments/compare.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>

#include "experiments/metrics.h"
#include "experiments/record_log.h"
#include "experiments/stats.h"

namespace qb {

namespace {

std::map<std::string, const Record*> by_hash(const std::vector<Record>& records) {
  std::map<std::string, const Record*> out;
  for (const Record& record : records) out[record.config_hash] = &record;
  return out;
}

/// Every timed record of each point: a baseline may hold several runs of a point, recorded to
/// learn how much the machine's timings move from run to run.
std::map<std::string, std::vector<const Record*>> timed_runs(const std::vector<Record>& records) {
  std::map<std::string, std::vector<const Record*>> out;
  for (const Record& record : records) {
    if (!record.failed() && record.latency) out[record.config_hash].push_back(&record);
  }
  return out;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

/// How `metric` changed between two records of a point, or nullopt when a side lacks it.
/// `base_runs`: the baseline's timed records of the point, when it holds several runs; a
/// repeated metric is then judged against their median, its test pools their repetitions, and
/// a change within their spread is noise. `comparable`: both sides ran on the same kind of
/// machine with the same kernels.
std::optional<MetricChange> metric_change(const Metric& metric, const Record& base,
                                          const std::vector<const Record*>& base_runs,
                                          const Record& cur, bool comparable,
                                          const CompareOptions& options) {
  std::optional<double> b = metric.value(base);
  const std::optional<double> c = metric.value(cur);
  if (!b || !c) return std::nullopt;
  MetricChange m;
  m.metric = metric.key;
  m.current = *c;
  if (metric.repetitions) {
    std::vector<double> values;
    std::vector<double> repetitions;
    for (const Record* run : base_runs.size() > 1 ? base_runs : std::vector<const Record*>{&base}) {
      const std::optional<double> value = metric.value(*run);
      if (!value) continue;
      values.push_back(*value);
      for (double r : metric.repetitions(*run)) repetitions.push_back(r);
    }
    b = median(values);
    m.baseline_runs = static_cast<int>(values.size());
    for (double v : values) m.run_to_run = std::max(m.run_to_run, *b != 0 ? std::abs(v - *b) / *b : 0.0);
    m.p_value = mann_whitney_u(repetitions, metric.repetitions(cur)).p_value;
  }
  m.baseline = *b;
  m.change = metric.relative ? (*b != 0 ? (*c - *b) / *b : 0.0) : *c - *b;
  const double tolerance = options.tolerance_of(metric.key);
  const bool large = tolerance > 0 ? std::abs(m.change) >= tolerance : m.change != 0;
  const bool worse = metric.better == Better::kLower ? m.change > 0 : m.change < 0;
  const bool noisy = (base.latency && base.latency->noisy) || (cur.latency && cur.latency->noisy);
  if ((metric.timing && !comparable) ||
      (metric.isa_dependent &&
       base.provenance.environment.onednn_isa != cur.provenance.environment.onednn_isa)) {
    m.verdict = "not comparable";
  } else if (metric.timing && noisy) {
    // A measurement that shared its cores says nothing either way.
    m.verdict = "inconclusive";
  } else if (!large) {
    m.verdict = "unchanged";
  } else if (metric.repetitions && (m.p_value >= options.alpha || std::abs(m.change) <= m.run_to_run)) {
    // Repetitions within one process do not see how much a whole run moves; the baseline's
    // runs do.
    m.verdict = "noise";
  } else {
    m.verdict = worse ? "regression" : "improvement";
  }
  return m;
}

/// An environment field compare reports when the two runs differ in it.
struct EnvironmentField {
  const char* name;
  /// Runs that differ in it cannot be compared for latency.
  bool decides_latency;
  std::string (*value)(const Environment&);
};

const std::vector<EnvironmentField>& environment_fields() {
  static const std::vector<EnvironmentField> fields = {
      {"cpu_model", true, [](const Environment& e) { return e.cpu_model; }},
      {"cpu_flags", true, [](const Environment& e) { return e.cpu_flags; }},
      {"cores", true, [](const Environment& e) { return std::to_string(e.cores); }},
      {"libtorch_version", true, [](const Environment& e) { return e.libtorch_version; }},
      {"hostname", false, [](const Environment& e) { return e.hostname; }},
      {"opencv_version", false, [](const Environment& e) { return e.opencv_version; }},
      {"quantized_engines", false, [](const Environment& e) { return e.quantized_engines; }},
  };
  return fields;
}

}  // namespace

double CompareOptions::tolerance_of(const std::string& key) const {
  auto it = tolerance.find(key);
  return it != tolerance.end() ? it->second : metric(key).tolerance;
}

bool PointComparison::regression() const {
  for (const MetricChange& m : metrics) {
    if (m.verdict == "regression") return true;
  }
  return false;
}

bool Comparison::regression() const {
  if (!failed_in_current.empty() || points.empty()) return true;
  for (const PointComparison& p : points) {
    if (p.regression()) return true;
  }
  return false;
}

std::string Comparison::verdict() const {
  if (!failed_in_current.empty()) return "failed points";
  if (points.empty()) return "nothing compared";
  if (regression()) return "regression";
  return latency_comparable ? "clean" : "not comparable";
}

Comparison compare_records(const std::vector<Record>& baseline, const std::vector<Record>& current,
                           const CompareOptions& options) {
  const std::vector<Record> measured_baseline = latest_measured(baseline);
  const std::vector<Record> measured_current = latest_measured(current);
  const auto base = by_hash(measured_baseline);
  const auto base_runs = timed_runs(baseline);
  const auto cur = by_hash(measured_current);
  Comparison out;
  if (!measured_baseline.empty() && !measured_current.empty()) {
    const Environment& b = measured_baseline.front().provenance.environment.machine;
    const Environment& c = measured_current.front().provenance.environment.machine;
    for (const EnvironmentField& field : environment_fields()) {
      const std::string bv = field.value(b);
      const std::string cv = field.value(c);
      if (bv == cv) continue;
      out.environment_differences.push_back(std::string(field.name) + ": " + bv + " -> " + cv);
      if (field.decides_latency) out.latency_comparable = false;
    }
  }
  for (const Record& record : measured_current) {
    auto it = base.find(record.config_hash);
    if (it == base.end()) {
      out.only_in_current.push_back(record.describe());
      continue;
    }
    PointComparison p;
    p.config_hash = record.config_hash;
    p.model = record.point.model;
    p.label = record.label;
    p.threads = record.point.threads;
    p.batch_size = record.point.batch_size;
    for (const Metric& metric : metrics()) {
      auto runs = base_runs.find(record.config_hash);
      std::optional<MetricChange> change =
          metric_change(metric, *it->second, runs == base_runs.end() ? std::vector<const Record*>{} : runs->second,
                        record, out.latency_comparable, options);
      if (change) p.metrics.push_back(*change);
    }
    out.points.push_back(std::move(p));
  }
  for (const Record& record : measured_baseline) {
    if (!cur.count(record.config_hash)) out.only_in_baseline.push_back(record.describe());
  }
  // A point whose last word is a failure: it was not measured, whatever an earlier record says.
  std::map<std::string, const Record*> last;
  std::vector<std::string> order;
  for (const Record& record : current) {
    if (!last.count(record.config_hash)) order.push_back(record.config_hash);
    last[record.config_hash] = &record;
  }
  for (const std::string& hash : order) {
    if (last.at(hash)->failed()) out.failed_in_current.push_back(last.at(hash)->describe() + ": " + last.at(hash)->error);
  }
  return out;
}

std::string markdown_report(const Comparison& comparison, const CompareOptions& options,
                            const std::string& baseline_name, const std::string& current_name) {
  std::string out = "# " + current_name + " against " + baseline_name + "\n\n";
  int regressions = 0;
  for (const PointComparison& p : comparison.points) regressions += p.regression();
  out += "**Verdict: " + comparison.verdict() + "** (" +
         std::to_string(comparison.points.size()) + " points compared, " +
         std::to_string(regressions) + " with a regression). Smallest changes that count:";
  for (const Metric& m : metrics()) {
    const double tolerance = options.tolerance_of(m.key);
    out += " " + m.key + " " +
           (tolerance == 0 ? std::string("any")
                           : m.relative ? format_number("%g%%", 100 * tolerance) : format_number("%g", tolerance)) +
           (m.repetitions ? " (and Mann-Whitney U, alpha " + format_number("%g", options.alpha) + ")" : "") +
           (&m == &metrics().back() ? "." : ",");
  }
  out += "\n\n";
  if (!comparison.latency_comparable) {
    out += "> **Latency not comparable:** the runs come from different machines or LibTorch "
           "builds, so no latency change is judged (accuracy and size still are):\n";
    for (const std::string& d : comparison.environment_differences) out += "> - " + d + "\n";
    out += "\n";
  } else if (!comparison.environment_differences.empty()) {
    out += "> **Note:** the runs' environments differ in ways that do not decide latency:\n";
    for (const std::string& d : comparison.environment_differences) out += "> - " + d + "\n";
    out += "\n";
  }
  auto list = [&](const std::string& title, const std::vector<std::string>& items) {
    if (items.empty()) return;
    out += "## " + title + "\n\n";
    for (const std::string& item : items) out += "- " + item + "\n";
    out += "\n";
  };
  list("Only in the baseline", comparison.only_in_baseline);
  list("Only in the current run", comparison.only_in_current);
  list("Failed in the current run", comparison.failed_in_current);
  if (comparison.points.empty()) out += "No point of the current run is in the baseline: nothing was compared.\n\n";
  out += "## Points\n\n| model | variant | threads | batch | metric | baseline | current | change | "
         "p | baseline run-to-run | verdict |\n| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |\n";
  for (bool regressions_first : {true, false}) {
    for (const PointComparison& p : comparison.points) {
      if (p.regression() != regressions_first) continue;
      for (const MetricChange& m : p.metrics) {
        const Metric& definition = metric(m.metric);
        const std::string change = definition.relative ? format_number("%+.1f%%", 100 * m.change)
                                                       : format_number("%+.2f", m.change);
        const std::string verdict = m.verdict == "regression" ? "**regression**" : m.verdict;
        out += "| " + p.model + " | " + p.label + " | " + std::to_string(p.threads) + " | " +
               std::to_string(p.batch_size) + " | " + m.metric + " | " +
               format_number("%.10g", m.baseline) + " | " + format_number("%.10g", m.current) + " | " +
               change + " | " + (m.p_value >= 0 ? format_number("%.4f", m.p_value) : std::string("-")) +
               " | " +
               (m.baseline_runs > 1 ? format_number("%.1f%%", 100 * m.run_to_run) + " (" +
                                          std::to_string(m.baseline_runs) + " runs)"
                                    : std::string("-")) +
               " | " + verdict + " |\n";
      }
    }
  }
  return out;
}

namespace {

nlohmann::json options_json(const CompareOptions& options) {
  nlohmann::json tolerance = nlohmann::json::object();
  for (const Metric& m : metrics()) tolerance[m.key] = options.tolerance_of(m.key);
  return {{"alpha", options.alpha}, {"tolerance", tolerance}};
}

}  // namespace

nlohmann::json verdict_json(const Comparison& comparison, const CompareOptions& options) {
  nlohmann::json points = nlohmann::json::array();
  nlohmann::json regressions = nlohmann::json::array();
  for (const PointComparison& p : comparison.points) {
    nlohmann::json metrics = nlohmann::json::array();
    for (const MetricChange& m : p.metrics) {
      nlohmann::json j = {{"metric", m.metric},
                          {"baseline", m.baseline},
                          {"current", m.current},
                          {"change", m.change},
                          {"verdict", m.verdict}};
      if (m.p_value >= 0) j["p_value"] = m.p_value;
      if (m.baseline_runs > 1) {
        j["baseline_runs"] = m.baseline_runs;
        j["run_to_run"] = m.run_to_run;
      }
      metrics.push_back(j);
      if (m.verdict == "regression") {
        regressions.push_back({{"config_hash", p.config_hash},
                               {"model", p.model},
                               {"label", p.label},
                               {"threads", p.threads},
                               {"batch_size", p.batch_size},
                               {"metric", m.metric}});
      }
    }
    points.push_back({{"config_hash", p.config_hash},
                      {"model", p.model},
                      {"label", p.label},
                      {"threads", p.threads},
                      {"batch_size", p.batch_size},
                      {"metrics", metrics}});
  }
  return {{"verdict", comparison.verdict()},
          {"latency_comparable", comparison.latency_comparable},
          {"options", options_json(options)},
          {"regressions", regressions},
          {"only_in_baseline", comparison.only_in_baseline},
          {"only_in_current", comparison.only_in_current},
          {"failed_in_current", comparison.failed_in_current},
          {"environment_differences", comparison.environment_differences},
          {"points", points}};
}

std::vector<Record> load_run_records(const std::string& path) {
  namespace fs = std::filesystem;
  const std::string file = fs::is_directory(path) ? path + "/records.jsonl" : path;
  if (!fs::exists(file)) throw std::runtime_error(file + ": no such records file");
  std::vector<Record> records = read_typed_records(file);
  if (records.empty()) throw std::runtime_error(file + ": holds no records");
  return records;
}

}  // namespace qb
