#pragma once
// Comparing two runs point by point, as a nightly regression check does: points are matched by
// configuration hash; latency changes are decided by a Mann-Whitney U test on the repetitions
// plus a minimum relative change (as Google Benchmark's compare.py does), accuracy changes by a
// tolerance in percentage points, and any size change is flagged.

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace qb {

struct CompareOptions {
  /// Latency: significance level of the two-sided Mann-Whitney U test.
  double alpha = 0.05;
  /// Latency: smallest relative change of the median that counts (0.05 = 5%).
  double min_latency_change = 0.05;
  /// Accuracy: smallest change of top-1 or top-5 (in percentage points) that counts.
  double accuracy_tolerance = 0.1;
};

/// One metric of one point on both sides.
struct MetricChange {
  std::string metric;  // "latency_ms", "top1_percent", "top5_percent", "size_bytes"
  double baseline = 0.0;
  double current = 0.0;
  /// (current - baseline) / baseline; for accuracy, current - baseline in points.
  double change = 0.0;
  double p_value = -1.0;  // latency only
  /// "regression", "improvement", "unchanged", or for latency "noise" (a large change the test
  /// does not support), "inconclusive" (either side measured under contention: latency.noisy)
  /// or "not comparable" (different machines, or oneDNN dispatched to different ISAs).
  std::string verdict;
};

struct PointComparison {
  std::string config_hash;
  std::string model;
  std::string label;
  int64_t threads = 1;
  int64_t batch_size = 1;
  std::vector<MetricChange> metrics;
  bool regression() const;
};

struct Comparison {
  std::vector<PointComparison> points;
  /// Points on one side only ("model label, threads, batch").
  std::vector<std::string> only_in_baseline;
  std::vector<std::string> only_in_current;
  /// Environment fields that differ ("cpu_model: A -> B").
  std::vector<std::string> environment_differences;
  /// False when CPU model, CPU flags, core count or LibTorch version differ: then no latency
  /// change is judged.
  bool latency_comparable = true;
  bool regression() const;
  /// "regression" (of any metric judged), else "not comparable" when latency could not be
  /// judged, else "clean".
  std::string verdict() const;
};

/// Compares two sets of records (a point recorded twice on one side: the later one counts).
/// std::invalid_argument naming the side for a record without the needed fields.
Comparison compare_records(const std::vector<nlohmann::json>& baseline,
                           const std::vector<nlohmann::json>& current,
                           const CompareOptions& options);

/// A Markdown report: verdict, warnings, regressions first, then every point's metrics.
std::string markdown_report(const Comparison& comparison, const CompareOptions& options,
                            const std::string& baseline_name, const std::string& current_name);

/// {"verdict": "clean" | "regression" | "not comparable", "regressions": [...], "points": [...], ...}.
nlohmann::json verdict_json(const Comparison& comparison, const CompareOptions& options);

/// The records of a run directory (its records.jsonl) or of a .jsonl file; std::runtime_error
/// naming the path when it holds none or cannot be read.
std::vector<nlohmann::json> load_run_records(const std::string& path);

}  // namespace qb
