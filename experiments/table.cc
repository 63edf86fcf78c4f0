#include "experiments/table.h"

#include <cstdio>

namespace qb {

namespace {
std::string format(const char* pattern, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, pattern, value);
  return buffer;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}
}  // namespace

std::string markdown_table(const std::vector<TableRow>& rows) {
  std::string out =
      "| variant | size (MB) | top-1 (%) | top-5 (%) | latency (ms/image) | threads |\n"
      "| --- | ---: | ---: | ---: | ---: | ---: |\n";
  for (const auto& row : rows) {
    out += "| " + row.variant + " | " + format("%.3f", row.size_mb) + " | " +
           format("%.2f", row.top1_percent) + " | " + format("%.2f", row.top5_percent) + " | " +
           format("%.3f", row.latency_ms) + " | " + std::to_string(row.threads) + " |\n";
  }
  return out;
}

std::string csv_table(const std::vector<TableRow>& rows) {
  std::string out = "variant,size_mb,top1_percent,top5_percent,latency_ms,threads\n";
  for (const auto& row : rows) {
    out += csv_field(row.variant) + "," + format("%.6f", row.size_mb) + "," +
           format("%.4f", row.top1_percent) + "," + format("%.4f", row.top5_percent) + "," +
           format("%.6f", row.latency_ms) + "," + std::to_string(row.threads) + "\n";
  }
  return out;
}

}  // namespace qb
