#include "experiments/metrics.h"

#include <cstdio>
#include <stdexcept>

namespace qb {

namespace {

std::vector<Metric> make_metrics() {
  Metric size;
  size.key = "size_bytes";
  size.header = "size MB";
  size.format = "%.3f";
  size.display_scale = 1e-6;
  size.value = [](const Record& r) -> std::optional<double> {
    if (!r.size_bytes) return std::nullopt;
    return static_cast<double>(*r.size_bytes);
  };
  size.better = Better::kLower;
  // Sizes are deterministic: any change means the model or its format changed.
  size.tolerance = 0.0;

  auto accuracy = [](const std::string& name, Summary AccuracyRecord::*figure) {
    Metric m;
    m.key = name + "_percent";
    m.header = (name == "top1" ? "top-1" : "top-5") + std::string(" %");
    m.format = "%.2f";
    m.value = [figure](const Record& r) -> std::optional<double> {
      if (!r.accuracy) return std::nullopt;
      return ((*r.accuracy).*figure).mean;
    };
    m.over_seeds = [figure](const Record& r) -> std::optional<Summary> {
      if (!r.accuracy) return std::nullopt;
      return (*r.accuracy).*figure;
    };
    m.better = Better::kHigher;
    m.relative = false;
    m.tolerance = 0.1;  // percentage points
    return m;
  };

  Metric latency;
  latency.key = "latency_ms";
  latency.header = "latency ms";
  latency.format = "%.3f";
  latency.value = [](const Record& r) -> std::optional<double> {
    if (!r.latency) return std::nullopt;
    return r.latency->median_ms;
  };
  latency.repetitions = [](const Record& r) {
    return r.latency ? r.latency->repetitions_ms : std::vector<double>{};
  };
  latency.marks = [](const Record& r) {
    std::string text;
    if (r.latency && r.latency->noisy) text += " noisy";
    if (r.latency && r.latency->oversubscribed) text += " oversubscribed";
    return text;
  };
  latency.better = Better::kLower;
  latency.tolerance = 0.05;  // as Google Benchmark's compare.py
  latency.timing = true;
  latency.isa_dependent = true;

  Metric sqnr;
  sqnr.key = "output_sqnr_db";
  sqnr.header = "output SQNR dB";
  sqnr.format = "%.1f";
  sqnr.value = [](const Record& r) -> std::optional<double> {
    if (!r.trust || !r.trust->output_sqnr_db) return std::nullopt;
    return *r.trust->output_sqnr_db;
  };
  sqnr.marks = [](const Record& r) { return r.broken() ? std::string(" BROKEN") : std::string(); };
  sqnr.better = Better::kHigher;
  sqnr.relative = false;
  sqnr.tolerance = 0.5;  // dB; the same kernels give the same output
  sqnr.isa_dependent = true;

  return {size, accuracy("top1", &AccuracyRecord::top1), accuracy("top5", &AccuracyRecord::top5),
          latency, sqnr};
}

}  // namespace

const std::vector<Metric>& metrics() {
  static const std::vector<Metric> table = make_metrics();
  return table;
}

const Metric& metric(const std::string& key) {
  std::string names;
  for (const Metric& m : metrics()) {
    if (m.key == key) return m;
    names += (names.empty() ? "" : ", ") + m.key;
  }
  throw std::invalid_argument("no metric '" + key + "' (metrics: " + names + ")");
}

std::string format_number(const char* pattern, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, pattern, value);
  return buffer;
}

std::string metric_cell(const Metric& metric, const Record& record) {
  const std::optional<double> value = metric.value(record);
  if (!value) return "-";
  std::string text = format_number(metric.format, *value * metric.display_scale);
  if (metric.over_seeds) {
    const std::optional<Summary> s = metric.over_seeds(record);
    if (s && s->n > 1) {
      text += " [" + format_number(metric.format, s->ci95_low * metric.display_scale) + ", " +
              format_number(metric.format, s->ci95_high * metric.display_scale) + "]";
    }
  }
  if (metric.marks) text += metric.marks(record);
  return text;
}

}  // namespace qb
