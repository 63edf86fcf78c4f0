#pragma once
// The files a run directory holds beside its records, rewritten after every point: table.md,
// table.csv (experiments/table.h) and benchmark.json, every timing in Google Benchmark's
// format so its tools (compare.py) read our measurements.

#include <string>
#include <vector>

#include "experiments/record.h"

namespace qb {

/// Rewrites table.md, table.csv and benchmark.json in `run_dir` from `records`; each file is
/// written beside and renamed over, so a reader never sees half a table.
void write_run_tables(const std::string& run_dir, const std::vector<Record>& records);

}  // namespace qb
