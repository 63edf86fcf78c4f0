#include "experiments/compare.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <stdexcept>

#include "experiments/records.h"
#include "experiments/stats.h"
#include "experiments/table.h"

namespace qb {

namespace {

/// The latest measured record of each point of one side, after checking every record has the
/// fields a comparison reads.
std::vector<nlohmann::json> measured_points(const std::vector<nlohmann::json>& records,
                                            const std::string& side) {
  for (const nlohmann::json& record : measured_only(records)) {
    if (!record.contains("config_hash") || !record.contains("latency") ||
        !record.contains("point")) {
      throw std::invalid_argument(side + ": a record lacks config_hash, point or latency");
    }
  }
  return latest_measured(records);
}

std::map<std::string, nlohmann::json> by_hash(const std::vector<nlohmann::json>& records) {
  std::map<std::string, nlohmann::json> out;
  for (const nlohmann::json& record : records) out[record["config_hash"].get<std::string>()] = record;
  return out;
}

std::string describe_point(const nlohmann::json& record) {
  const nlohmann::json& point = record.at("point");
  return point.at("model").get<std::string>() + " " + record.at("label").get<std::string>() +
         ", " + std::to_string(point.at("threads").get<int64_t>()) + " thread(s), batch " +
         std::to_string(point.at("batch_size").get<int64_t>());
}

std::string onednn_isa(const nlohmann::json& record) {
  return record.value("provenance", nlohmann::json::object())
      .value("environment", nlohmann::json::object())
      .value("onednn_isa", std::string());
}

/// `comparable`: both sides ran on the same kind of machine with the same kernels.
MetricChange latency_change(const nlohmann::json& base_record, const nlohmann::json& cur_record,
                            bool comparable, const CompareOptions& options) {
  const nlohmann::json& base = base_record.at("latency");
  const nlohmann::json& cur = cur_record.at("latency");
  MetricChange m;
  m.metric = "latency_ms";
  m.baseline = base.at("median_ms").get<double>();
  m.current = cur.at("median_ms").get<double>();
  m.change = m.baseline > 0 ? (m.current - m.baseline) / m.baseline : 0.0;
  m.p_value = mann_whitney_u(base.at("repetitions_ms").get<std::vector<double>>(),
                             cur.at("repetitions_ms").get<std::vector<double>>())
                  .p_value;
  const bool large = std::abs(m.change) >= options.min_latency_change;
  if (!comparable || onednn_isa(base_record) != onednn_isa(cur_record)) {
    m.verdict = "not comparable";
  } else if (base.value("noisy", false) || cur.value("noisy", false)) {
    // A measurement that shared its cores says nothing either way.
    m.verdict = "inconclusive";
  } else if (!large) {
    m.verdict = "unchanged";
  } else if (m.p_value >= options.alpha) {
    m.verdict = "noise";
  } else {
    m.verdict = m.change > 0 ? "regression" : "improvement";
  }
  return m;
}

MetricChange accuracy_change(const std::string& metric, double base, double cur,
                             const CompareOptions& options) {
  MetricChange m;
  m.metric = metric;
  m.baseline = base;
  m.current = cur;
  m.change = cur - base;
  if (std::abs(m.change) <= options.accuracy_tolerance) {
    m.verdict = "unchanged";
  } else {
    m.verdict = m.change < 0 ? "regression" : "improvement";
  }
  return m;
}

// Fields that decide latency: runs that differ in one cannot be compared for it.
const std::vector<std::string>& machine_fields() {
  static const std::vector<std::string> fields = {"cpu_model", "cpu_flags", "cores",
                                                  "libtorch_version"};
  return fields;
}

// Fields reported when they differ, which do not decide latency.
const std::vector<std::string>& other_environment_fields() {
  static const std::vector<std::string> fields = {"hostname", "opencv_version", "quantized_engines"};
  return fields;
}

}  // namespace

bool PointComparison::regression() const {
  for (const MetricChange& m : metrics) {
    if (m.verdict == "regression") return true;
  }
  return false;
}

bool Comparison::regression() const {
  for (const PointComparison& p : points) {
    if (p.regression()) return true;
  }
  return false;
}

std::string Comparison::verdict() const {
  if (regression()) return "regression";
  return latency_comparable ? "clean" : "not comparable";
}

Comparison compare_records(const std::vector<nlohmann::json>& baseline,
                           const std::vector<nlohmann::json>& current,
                           const CompareOptions& options) {
  const std::vector<nlohmann::json> measured_baseline = measured_points(baseline, "baseline");
  const std::vector<nlohmann::json> measured_current = measured_points(current, "current");
  const auto base = by_hash(measured_baseline);
  const auto cur = by_hash(measured_current);
  Comparison out;
  if (!measured_baseline.empty() && !measured_current.empty()) {
    const nlohmann::json b = measured_baseline.front().value("provenance", nlohmann::json::object())
                                 .value("environment", nlohmann::json::object());
    const nlohmann::json c = measured_current.front().value("provenance", nlohmann::json::object())
                                 .value("environment", nlohmann::json::object());
    for (const auto* fields : {&machine_fields(), &other_environment_fields()}) {
      for (const std::string& field : *fields) {
        const nlohmann::json bv = b.value(field, nlohmann::json());
        const nlohmann::json cv = c.value(field, nlohmann::json());
        if (bv == cv) continue;
        auto text = [](const nlohmann::json& v) {
          return v.is_string() ? v.get<std::string>() : v.dump();
        };
        out.environment_differences.push_back(field + ": " + text(bv) + " -> " + text(cv));
        if (fields == &machine_fields()) out.latency_comparable = false;
      }
    }
  }
  for (const nlohmann::json& record : measured_current) {
    const std::string hash = record["config_hash"].get<std::string>();
    if (!base.count(hash)) {
      out.only_in_current.push_back(describe_point(record));
      continue;
    }
    const nlohmann::json& b = base.at(hash);
    PointComparison p;
    p.config_hash = hash;
    p.model = record["point"]["model"].get<std::string>();
    p.label = record["label"].get<std::string>();
    p.threads = record["point"]["threads"].get<int64_t>();
    p.batch_size = record["point"]["batch_size"].get<int64_t>();
    p.metrics.push_back(latency_change(b, record, out.latency_comparable, options));
    if (!b["accuracy"].is_null() && !record["accuracy"].is_null()) {
      for (const char* metric : {"top1", "top5"}) {
        p.metrics.push_back(accuracy_change(std::string(metric) + "_percent",
                                            b["accuracy"][metric]["mean"].get<double>(),
                                            record["accuracy"][metric]["mean"].get<double>(),
                                            options));
      }
    }
    MetricChange size;
    size.metric = "size_bytes";
    size.baseline = b["size_bytes"].get<double>();
    size.current = record["size_bytes"].get<double>();
    size.change = size.baseline > 0 ? (size.current - size.baseline) / size.baseline : 0.0;
    // Sizes are deterministic: any change means the model or its format changed.
    size.verdict = size.current > size.baseline   ? "regression"
                   : size.current < size.baseline ? "improvement"
                                                  : "unchanged";
    p.metrics.push_back(size);
    out.points.push_back(std::move(p));
  }
  for (const nlohmann::json& record : measured_baseline) {
    const std::string hash = record["config_hash"].get<std::string>();
    if (!cur.count(hash)) {
      out.only_in_baseline.push_back(describe_point(record));
    }
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
         std::to_string(regressions) + " with a regression). Latency: Mann-Whitney U, alpha " +
         format_number("%g", options.alpha) + ", minimum change " +
         format_number("%g", 100 * options.min_latency_change) + "%; accuracy tolerance " +
         format_number("%g", options.accuracy_tolerance) + " points; any size change is flagged.\n\n";
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
  out += "## Points\n\n| model | variant | threads | batch | metric | baseline | current | change | "
         "p | verdict |\n| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |\n";
  for (bool regressions_first : {true, false}) {
    for (const PointComparison& p : comparison.points) {
      if (p.regression() != regressions_first) continue;
      for (const MetricChange& m : p.metrics) {
        const bool latency = m.metric == "latency_ms";
        const bool accuracy = m.metric.find("percent") != std::string::npos;
        std::string change = accuracy ? format_number("%+.2f pt", m.change)
                                      : format_number("%+.1f%%", 100 * m.change);
        std::string verdict = m.verdict == "regression" ? "**regression**" : m.verdict;
        out += "| " + p.model + " | " + p.label + " | " + std::to_string(p.threads) + " | " +
               std::to_string(p.batch_size) + " | " + m.metric + " | " +
               format_number(latency ? "%.4f" : accuracy ? "%.2f" : "%.0f", m.baseline) + " | " +
               format_number(latency ? "%.4f" : accuracy ? "%.2f" : "%.0f", m.current) + " | " + change +
               " | " + (latency ? format_number("%.4f", m.p_value) : std::string("-")) + " | " +
               verdict + " |\n";
      }
    }
  }
  return out;
}

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
          {"options",
           {{"alpha", options.alpha},
            {"min_latency_change", options.min_latency_change},
            {"accuracy_tolerance", options.accuracy_tolerance}}},
          {"regressions", regressions},
          {"only_in_baseline", comparison.only_in_baseline},
          {"only_in_current", comparison.only_in_current},
          {"environment_differences", comparison.environment_differences},
          {"points", points}};
}

std::vector<nlohmann::json> load_run_records(const std::string& path) {
  namespace fs = std::filesystem;
  const std::string file = fs::is_directory(path) ? path + "/records.jsonl" : path;
  if (!fs::exists(file)) throw std::runtime_error(file + ": no such records file");
  std::vector<nlohmann::json> records = read_records(file);
  if (records.empty()) throw std::runtime_error(file + ": holds no records");
  return records;
}

}  // namespace qb
