#pragma once
// The comparison table a sweep prints and writes: one row per variant.

#include <string>
#include <vector>

namespace qb {

struct TableRow {
  std::string variant;
  double size_mb = 0.0;
  double top1_percent = 0.0;
  double top5_percent = 0.0;
  double latency_ms = 0.0;  // median per image, batch 1
  int threads = 1;
};

/// GitHub Markdown, numbers with fixed decimals so columns line up.
std::string markdown_table(const std::vector<TableRow>& rows);
/// RFC 4180 CSV with a header line.
std::string csv_table(const std::vector<TableRow>& rows);

}  // namespace qb
