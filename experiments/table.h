#pragma once
// The comparison table of a run, built from its records: one row per point, with the metrics
// of experiments/metrics.h (size, accuracy as the mean and 95% interval over calibration seeds,
// latency, output SQNR) and the speedup against the fp32 row of the same model, thread count,
// batch size, ISA and runtime (or the interpreter's, when fp32 was timed by it only). A latency
// measured under contention is marked "noisy", one with more
// threads than cores "oversubscribed", and an int8 model whose output is too far from fp32's
// "BROKEN" (with no speedup: a wrong result is not faster).

#include <optional>
#include <string>
#include <vector>

#include "experiments/record.h"

namespace qb {

struct TableRow {
  Record record;
  /// The fp32 row's latency / this latency, when both were timed.
  std::optional<double> speedup;
};

/// Rows in record order, failures left out; a point recorded twice (two shards, a rerun)
/// counts once, the later record winning, and its accuracy and latency parts are joined.
std::vector<TableRow> table_rows(const std::vector<Record>& records);

/// GitHub Markdown with fixed decimals; seeded figures show "mean [low, high]".
std::string markdown_table(const std::vector<TableRow>& rows);
/// RFC 4180 CSV with a header line; every number in its own column, in the metric's unit.
std::string csv_table(const std::vector<TableRow>& rows);

}  // namespace qb
