#include "experiments/table.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <tuple>

#include "experiments/records.h"

namespace qb {

namespace {

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

std::optional<Figure> figure(const nlohmann::json& accuracy, const std::string& name) {
  if (accuracy.is_null()) return std::nullopt;
  const nlohmann::json& summary = accuracy.at(name);
  return Figure{summary.at("mean").get<double>(), summary.at("n").get<int>(),
                summary.at("ci95")[0].get<double>(), summary.at("ci95")[1].get<double>()};
}

std::string markdown_figure(const std::optional<Figure>& f) {
  if (!f) return "-";
  std::string text = format_number("%.2f", f->mean);
  if (f->n > 1) text += " [" + format_number("%.2f", f->ci95_low) + ", " + format_number("%.2f", f->ci95_high) + "]";
  return text;
}

std::string markdown_latency(const TableRow& row) {
  std::string text = format_number("%.3f", row.latency_ms);
  if (row.noisy) text += " noisy";
  if (row.oversubscribed) text += " oversubscribed";
  return text;
}

std::string markdown_variant(const TableRow& row) {
  if (!row.broken) return row.variant;
  return row.variant + " BROKEN (output SQNR " + format_number("%.1f", *row.output_sqnr_db) + " dB)";
}

}  // namespace

std::string format_number(const char* pattern, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, pattern, value);
  return buffer;
}

std::vector<TableRow> table_rows(const std::vector<nlohmann::json>& records) {
  std::vector<TableRow> rows;
  for (const nlohmann::json& record : latest_measured(records)) {
    const nlohmann::json& point = record.at("point");
    TableRow row;
    row.model = point.at("model").get<std::string>();
    row.variant = record.at("label").get<std::string>();
    row.point_variant = point.value("variant", "");
    row.threads = point.at("threads").get<int64_t>();
    row.batch_size = point.at("batch_size").get<int64_t>();
    row.size_mb = record.at("size_bytes").get<double>() / 1e6;
    row.top1 = figure(record.at("accuracy"), "top1");
    row.top5 = figure(record.at("accuracy"), "top5");
    const nlohmann::json& latency = record.at("latency");
    row.latency_ms = latency.at("median_ms").get<double>();
    row.isa = point.value("isa", "");
    row.noisy = latency.value("noisy", false);
    row.oversubscribed = latency.value("oversubscribed", false);
    const nlohmann::json trust = record.value("trust", nlohmann::json());
    if (trust.is_object() && trust.contains("output_sqnr_db")) {
      const nlohmann::json& db = trust.at("output_sqnr_db");
      row.output_sqnr_db = db.is_number() ? db.get<double>()
                                          : (db == "inf" ? INFINITY : -INFINITY);
      row.broken = trust.value("broken", false);
    }
    rows.push_back(row);
  }
  std::map<std::tuple<std::string, int64_t, int64_t, std::string>, double> fp32_latency;
  for (const TableRow& row : rows) {
    if (row.point_variant == "fp32") fp32_latency[{row.model, row.threads, row.batch_size, row.isa}] = row.latency_ms;
  }
  for (TableRow& row : rows) {
    auto it = fp32_latency.find({row.model, row.threads, row.batch_size, row.isa});
    if (it != fp32_latency.end() && row.latency_ms > 0 && !row.broken) {
      row.speedup = it->second / row.latency_ms;
    }
  }
  return rows;
}

std::string markdown_table(const std::vector<TableRow>& rows) {
  std::string out =
      "| model | variant | threads | batch | size MB | top-1 % | top-5 % | latency ms | speedup |\n"
      "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const TableRow& row : rows) {
    out += "| " + row.model + " | " + markdown_variant(row) + " | " + std::to_string(row.threads) + " | " +
           std::to_string(row.batch_size) + " | " + format_number("%.3f", row.size_mb) + " | " +
           markdown_figure(row.top1) + " | " + markdown_figure(row.top5) + " | " +
           markdown_latency(row) + " | " +
           (row.speedup ? format_number("%.2fx", *row.speedup) : std::string("-")) + " |\n";
  }
  return out;
}

std::string csv_table(const std::vector<TableRow>& rows) {
  std::string out =
      "model,variant,threads,batch_size,size_mb,top1_percent,top1_ci95_low,top1_ci95_high,"
      "top5_percent,top5_ci95_low,top5_ci95_high,seeds,latency_ms,speedup,isa,noisy,"
      "oversubscribed,output_sqnr_db,broken\n";
  auto figure_fields = [](const std::optional<Figure>& f) {
    if (!f) return std::string(",,");
    return format_number("%.4f", f->mean) + "," + format_number("%.4f", f->ci95_low) + "," +
           format_number("%.4f", f->ci95_high);
  };
  for (const TableRow& row : rows) {
    out += csv_field(row.model) + "," + csv_field(row.variant) + "," +
           std::to_string(row.threads) + "," + std::to_string(row.batch_size) + "," +
           format_number("%.6f", row.size_mb) + "," + figure_fields(row.top1) + "," +
           figure_fields(row.top5) + "," + (row.top1 ? std::to_string(row.top1->n) : "") + "," +
           format_number("%.6f", row.latency_ms) + "," +
           (row.speedup ? format_number("%.4f", *row.speedup) : std::string()) + "," +
           csv_field(row.isa) + "," + (row.noisy ? "true" : "false") + "," +
           (row.oversubscribed ? "true" : "false") + "," +
           (row.output_sqnr_db ? format_number("%.4f", *row.output_sqnr_db) : std::string()) + "," +
           (row.broken ? "true" : "false") + "\n";
  }
  return out;
}

}  // namespace qb
