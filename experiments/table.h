#pragma once
// The comparison table of a run, built from its records: one row per point, with accuracy (the
// mean and 95% interval over calibration seeds), size, latency and speedup against the fp32 row
// of the same model, thread count, batch size and ISA. A latency measured under contention is
// marked "noisy", one with more threads than cores "oversubscribed", and an int8 model whose
// output is too far from fp32's "BROKEN" (with no speedup: a wrong result is not faster).

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace qb {

/// A figure measured once or over several calibration seeds.
struct Figure {
  double mean = 0.0;
  int n = 1;
  double ci95_low = 0.0;
  double ci95_high = 0.0;
};

struct TableRow {
  std::string model;
  std::string variant;  // the point's label
  std::string point_variant;  // point.variant: "fp32", "fp32_as_built", "eager" or "graph"
  int64_t threads = 1;
  int64_t batch_size = 1;
  double size_mb = 0.0;
  std::optional<Figure> top1;  // absent for latency-only sweeps
  std::optional<Figure> top5;
  double latency_ms = 0.0;  // median time of one batch
  std::optional<double> speedup;  // fp32 latency / this latency, when the fp32 row exists
  std::string isa;  // the point's oneDNN ISA cap; "" for the CPU's best
  /// latency.noisy: measured under contention (eval/contention.h) even after retries.
  bool noisy = false;
  /// More threads than cores.
  bool oversubscribed = false;
  /// trust.output_sqnr_db and trust.broken of an int8 point.
  std::optional<double> output_sqnr_db;
  bool broken = false;
};

/// `value` printed with a printf `pattern` such as "%.2f".
std::string format_number(const char* pattern, double value);

/// Rows in record order, failures left out; a record seen twice (same config_hash, e.g. from two shards) counts
/// once, the later one winning.
std::vector<TableRow> table_rows(const std::vector<nlohmann::json>& records);

/// GitHub Markdown with fixed decimals; seeded figures show "mean [low, high]".
std::string markdown_table(const std::vector<TableRow>& rows);
/// RFC 4180 CSV with a header line; every number in its own column.
std::string csv_table(const std::vector<TableRow>& rows);

}  // namespace qb
