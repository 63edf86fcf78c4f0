#include "experiments/run_tables.h"

#include <filesystem>

#include "base/atomic_file.h"
#include "experiments/table.h"

namespace qb {

void write_run_tables(const std::string& run_dir, const std::vector<Record>& records) {
  namespace fs = std::filesystem;
  fs::create_directories(run_dir);
  const std::vector<TableRow> rows = table_rows(records);  // failures are listed by the runner
  auto write = [&](const std::string& name, const std::string& text) {
    write_file_atomically(run_dir + "/" + name, text);
  };
  write("table.md", markdown_table(rows));
  write("table.csv", csv_table(rows));
  nlohmann::json benchmark = {{"context", nullptr}, {"benchmarks", nlohmann::json::array()}};
  for (const TableRow& row : rows) {
    const nlohmann::json& report = row.record.google_benchmark;
    if (report.is_null()) continue;
    if (benchmark["context"].is_null()) benchmark["context"] = report.at("context");
    for (const nlohmann::json& run : report.at("benchmarks")) benchmark["benchmarks"].push_back(run);
  }
  write("benchmark.json", benchmark.dump(2));
}

}  // namespace qb
