#include "experiments/table.h"

#include <map>
#include <tuple>

#include "experiments/metrics.h"

namespace qb {

namespace {

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

using SpeedupKey = std::tuple<std::string, int64_t, int64_t, std::string, std::string>;

// An int8 row's speedup is against the fp32 row timed the same way, runtime included, or the
// interpreter's when the sweep timed fp32 by the interpreter only.
SpeedupKey speedup_key(const Point& p, const std::string& runtime) {
  return {p.model, p.threads, p.batch_size, p.isa, runtime};
}

}  // namespace

std::vector<TableRow> table_rows(const std::vector<Record>& records) {
  std::vector<TableRow> rows;
  for (Record& record : latest_measured(records)) rows.push_back({std::move(record), std::nullopt});
  std::map<SpeedupKey, double> fp32_latency;
  for (const TableRow& row : rows) {
    if (row.record.point.variant == "fp32" && row.record.latency) {
      fp32_latency[speedup_key(row.record.point, row.record.point.runtime)] = row.record.latency->median_ms;
    }
  }
  for (TableRow& row : rows) {
    auto it = fp32_latency.find(speedup_key(row.record.point, row.record.point.runtime));
    if (it == fp32_latency.end()) it = fp32_latency.find(speedup_key(row.record.point, "interpreter"));
    if (it != fp32_latency.end() && row.record.latency && row.record.latency->median_ms > 0 &&
        !row.record.broken()) {
      row.speedup = it->second / row.record.latency->median_ms;
    }
  }
  return rows;
}

std::string markdown_table(const std::vector<TableRow>& rows) {
  std::string header = "| model | variant | threads | batch |";
  std::string rule = "| --- | --- | ---: | ---: |";
  for (const Metric& m : metrics()) {
    header += " " + m.header + " |";
    rule += " ---: |";
  }
  std::string out = header + " speedup |\n" + rule + " ---: |\n";
  for (const TableRow& row : rows) {
    const Record& r = row.record;
    out += "| " + r.point.model + " | " + r.label + " | " + std::to_string(r.point.threads) + " | " +
           std::to_string(r.point.batch_size) + " |";
    for (const Metric& m : metrics()) out += " " + metric_cell(m, r) + " |";
    out += " " + (row.speedup ? format_number("%.2fx", *row.speedup) : std::string("-")) + " |\n";
  }
  return out;
}

std::string csv_table(const std::vector<TableRow>& rows) {
  std::string out = "model,variant,threads,batch_size";
  for (const Metric& m : metrics()) {
    out += "," + m.key;
    if (m.over_seeds) out += "," + m.key + "_ci95_low," + m.key + "_ci95_high";
  }
  out += ",seeds,speedup,isa,noisy,oversubscribed,broken\n";
  for (const TableRow& row : rows) {
    const Record& r = row.record;
    out += csv_field(r.point.model) + "," + csv_field(r.label) + "," + std::to_string(r.point.threads) +
           "," + std::to_string(r.point.batch_size);
    for (const Metric& m : metrics()) {
      const std::optional<double> value = m.value(r);
      out += "," + (value ? format_number("%.10g", *value) : std::string());
      if (!m.over_seeds) continue;
      const std::optional<Summary> s = m.over_seeds(r);
      out += s ? "," + format_number("%.10g", s->ci95_low) + "," + format_number("%.10g", s->ci95_high)
               : std::string(",,");
    }
    out += "," + (r.accuracy ? std::to_string(r.accuracy->top1.n) : std::string()) + "," +
           (row.speedup ? format_number("%.4f", *row.speedup) : std::string()) + "," +
           csv_field(r.point.isa) + "," + (r.latency && r.latency->noisy ? "true" : "false") + "," +
           (r.latency && r.latency->oversubscribed ? "true" : "false") + "," +
           (r.broken() ? "true" : "false") + "\n";
  }
  return out;
}

}  // namespace qb
