#pragma once
// The metrics of a sweep point, in one table: how each is read from a record, shown and
// judged. Tables, CSV, HTML, the nightly history and compare iterate this table, so a new
// metric is one entry here.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "experiments/record.h"
#include "experiments/stats.h"

namespace qb {

enum class Better { kLower, kHigher };

struct Metric {
  /// The metric's name in CSV headers, histories and compare's verdicts: "latency_ms".
  std::string key;
  /// The table's column header, in display units: "latency ms".
  std::string header;
  /// printf pattern of a table cell, and the factor from the metric's unit to the cell's.
  const char* format;
  double display_scale = 1.0;
  /// The value of a record; nullopt when it has none (no accuracy, an fp32 point's SQNR).
  std::function<std::optional<double>(const Record&)> value;
  /// The value's spread over calibration seeds, when it is a mean over seeds.
  std::function<std::optional<Summary>(const Record&)> over_seeds;
  /// Repeated measurements of the value: a change must then also pass a Mann-Whitney U test.
  std::function<std::vector<double>(const Record&)> repetitions;
  /// Marks a table cell carries ("noisy").
  std::function<std::string(const Record&)> marks;
  Better better = Better::kHigher;
  /// Whether a change is judged relative to the baseline (latency, size) or as a difference
  /// of values (accuracy points, dB).
  bool relative = true;
  /// The smallest change that counts by default (relative, or in the metric's unit); 0: any.
  double tolerance = 0.0;
  /// A timing: no verdict across machines, none either when a side was noisy.
  bool timing = false;
  /// Depends on the kernels oneDNN dispatched to: no verdict across oneDNN ISAs.
  bool isa_dependent = false;
};

/// Size, top-1, top-5, latency and output SQNR, in table order.
const std::vector<Metric>& metrics();
/// The metric named `key`; std::invalid_argument listing the names otherwise.
const Metric& metric(const std::string& key);

/// `value` printed with a printf `pattern` such as "%.2f".
std::string format_number(const char* pattern, double value);

/// A table cell: the value in display units, "mean [low, high]" over several seeds, then the
/// marks; "-" without a value.
std::string metric_cell(const Metric& metric, const Record& record);

}  // namespace qb
