#pragma once
// Comparing two runs point by point, as a nightly regression check does: points are matched by
// configuration hash and every metric of experiments/metrics.h both sides have is judged: a
// change counts when it exceeds the metric's tolerance (relative for latency and size, in
// points or dB for accuracy and SQNR) and, for repeated measurements (latency), when a
// Mann-Whitney U test on the repetitions supports it too, as Google Benchmark's compare.py
// does, and when it exceeds the spread of the baseline's runs (a baseline file may hold
// several runs of each point: repetitions within one process do not show how much a whole run
// moves). Any size change counts.

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

#include "experiments/record.h"

namespace qb {

struct CompareOptions {
  /// Significance level of the two-sided Mann-Whitney U test on repeated measurements.
  double alpha = 0.05;
  /// Per metric key, the smallest change that counts, overriding the metric's default.
  std::map<std::string, double> tolerance;
  /// The tolerance of metric `key`: tolerance[key] when set, else its default.
  double tolerance_of(const std::string& key) const;
};

/// One metric of one point on both sides.
struct MetricChange {
  std::string metric;  // a key of experiments/metrics.h: "latency_ms", "top1_percent", ...
  double baseline = 0.0;
  double current = 0.0;
  /// (current - baseline) / baseline; for accuracy and SQNR, current - baseline.
  double change = 0.0;
  double p_value = -1.0;  // repeated measurements only
  /// Repeated measurements against a baseline holding several runs of the point: how many,
  /// and the largest relative distance of a run's value from their median (the baseline
  /// value). A change no larger than that is noise.
  int baseline_runs = 1;
  double run_to_run = 0.0;
  /// "regression", "improvement", "unchanged", or for latency "noise" (a large change the test
  /// does not support, or within the baseline's run-to-run spread), "inconclusive" (either side measured under contention: latency.noisy)
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
  /// Points of the current run whose latest record is a failure ("... : error").
  std::vector<std::string> failed_in_current;
  /// Environment fields that differ ("cpu_model: A -> B").
  std::vector<std::string> environment_differences;
  /// False when CPU model, CPU flags, core count or LibTorch version differ: then no latency
  /// change is judged.
  bool latency_comparable = true;
  /// A regression of any metric judged, a failed point in the current run, or no point
  /// compared at all: what a nightly gate must not pass.
  bool regression() const;
  /// "regression", "failed points", "nothing compared", else "not comparable" when latency
  /// could not be judged, else "clean".
  std::string verdict() const;
};

/// Compares two sets of records (a point recorded twice on one side: the later one counts).
Comparison compare_records(const std::vector<Record>& baseline, const std::vector<Record>& current,
                           const CompareOptions& options);

/// A Markdown report: verdict, warnings, regressions first, then every point's metrics.
std::string markdown_report(const Comparison& comparison, const CompareOptions& options,
                            const std::string& baseline_name, const std::string& current_name);

/// {"verdict": "clean" | "regression" | "not comparable", "regressions": [...], "points": [...], ...}.
nlohmann::json verdict_json(const Comparison& comparison, const CompareOptions& options);

/// The records of a run directory (its records.jsonl) or of a .jsonl file; std::runtime_error
/// naming the path when it holds none or cannot be read.
std::vector<Record> load_run_records(const std::string& path);

}  // namespace qb
