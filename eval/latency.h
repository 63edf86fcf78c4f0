#pragma once
// Latency of one forward pass, measured through Google Benchmark's runner
// (warm-up, automatic iteration count, repetitions), at a given thread count.

#include <nlohmann/json.hpp>

#include "eval/contention.h"

#include <functional>
#include <string>
#include <vector>

namespace qb {

struct LatencyOptions {
  /// Intra-op threads for the measurement (inter-op threads are a process setting; the sweep sets
  /// them to 1 at start-up).
  int threads = 1;
  /// Google Benchmark's minimum time per repetition, and its warm-up time.
  double min_time_s = 0.5;
  double warmup_s = 0.2;
  int repetitions = 5;
};

/// Per-repetition mean time of one call, in milliseconds, with summary statistics.
struct LatencyResult {
  std::vector<double> repetitions_ms;
  double median_ms = 0.0;
  double mean_ms = 0.0;
  double stddev_ms = 0.0;
  double p90_ms = 0.0;
  /// stddev / mean: how much the repetitions differ (a busy machine can slow all alike).
  double cv = 0.0;
  /// What each repetition had of the machine (eval/contention.h); empty from summarize_latency.
  std::vector<RepetitionUsage> usage;
  /// Google Benchmark's own JSON report of the run ({"context": ..., "benchmarks": [...]}), so
  /// its tools (compare.py) can read our measurements; null from summarize_latency.
  nlohmann::json google_benchmark;
};

/// Times `run_once` (which must do one complete forward pass) and restores the thread count.
LatencyResult measure_latency(const std::string& name, const std::function<void()>& run_once,
                              const LatencyOptions& options);

/// Statistics of a set of per-repetition times (exposed for tests).
LatencyResult summarize_latency(std::vector<double> repetitions_ms);

}  // namespace qb
