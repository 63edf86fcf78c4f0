#pragma once
// The sweep runner: measures every point of an experiment that its run directory does not yet
// hold, appending one record per point, and rewrites the run's tables after each one.
//
// Work is shared between points: the evaluation images are decoded once (CachedDataset), the
// fp32 accuracy once per model, each calibration subset once per seed, and each converted model
// (with its accuracy and trust checks) once for all its thread counts, batch sizes and ISAs.
// Latency is not shared: each measurement runs in a fresh process (eval/isolated_latency.h) on
// the saved model, and one that shows contention (eval/contention.h) is repeated, then recorded
// as noisy if it stays so.

#include <memory>
#include <optional>
#include <string>

#include "data/dataset.h"
#include "experiments/experiment.h"
#include "experiments/record.h"

namespace qb {

struct SweepOptions {
  /// Recompute points already recorded (and write into a run directory of another experiment).
  bool force = false;
  /// Only check the experiment (models load and run on the data, sizes fit), measuring nothing.
  bool check_only = false;
  /// Run shard k of n (see points.h).
  int shard_k = 1;
  int shard_n = 1;
  /// The run directory's name under the experiment's output directory.
  std::string run = "default";
  /// The part of each point to measure: all of it, its accuracy part (accuracy, size, trust
  /// checks; any machine) or its latency part (timing and output SQNR; the reference
  /// machine). Records of both parts join into one run (experiments/record.h).
  RecordPart part = RecordPart::kAll;
  /// Instead of measuring points: per-layer sensitivity and the fp32 fallback of the [tuning]
  /// points (experiments/tuning.h), written to the run directory's tuning/ folder.
  bool tune = false;
  /// The latency_probe binary every latency measurement runs in; empty: find_latency_probe("")
  /// (from $QB_LATENCY_PROBE or the runfiles of a test or `bazel run`).
  std::string latency_probe;
};

/// What a sweep did, for callers and tests.
struct SweepSummary {
  int points = 0;    // in this shard
  int skipped = 0;   // already recorded (this part of them)
  int measured = 0;
  int failed = 0;    // recorded as failures, to be tried again by the next run
  int unsupported = 0;  // not timed: this CPU lacks the point's ISA
  std::string run_dir;
};

/// Runs the sweep. `evaluation` and `calibration` are the data sets [data] names (they may be the
/// same object when calibration.split equals data.split). Bad input (overlapping calibration and
/// evaluation examples, too few calibration examples) throws before any point is measured.
SweepSummary run_sweep(const Experiment& experiment, const Dataset& evaluation,
                       const Dataset& calibration, const SweepOptions& options);

}  // namespace qb
