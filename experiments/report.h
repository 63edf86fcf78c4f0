#pragma once
// Rendering runs for readers: the comparison table (Markdown, CSV, a static HTML page), plots
// (SVG through gnuplot) and the history of nightly runs; and results/README.md, the published
// tables.

#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

#include "experiments/plot.h"
#include "experiments/record.h"
#include "experiments/tuning_record.h"

namespace qb {

/// The plots a set of records supports, each with its file stem: accuracy against calibration
/// samples per observer (uncalibrated models at 0), latency against threads per variant, the
/// size-latency-accuracy trade-off, per-layer SQNR of the int8 models; an experiment without
/// accuracy gets latency, size and SQNR plots only. Broken int8 points are left out of all but
/// the accuracy plot.
std::vector<std::pair<std::string, PlotSpec>> run_plots(const std::vector<Record>& records);

/// What a reader wants first: the best int8 point against the fp32 model at the same threads,
/// batch and ISA (the most accurate one, the fastest without accuracy; never a broken one),
/// with its accuracy change, speedup and size ratio; "" when there is no such pair.
std::string headline(const std::vector<Record>& records);

/// One line per run in a history file: the run's name and date, its provenance, and per point
/// (config_hash) its label and every metric it has (experiments/metrics.h).
nlohmann::json history_entry(const std::string& run, const std::vector<Record>& records);
/// Appends history_entry(run, records) to `path`, replacing an earlier entry of the same run.
void append_history(const std::string& path, const std::string& run,
                    const std::vector<Record>& records);
/// Each metric of every point over the history's runs.
std::vector<std::pair<std::string, PlotSpec>> history_plots(
    const std::vector<nlohmann::json>& history);

/// Provenance shared by a run's records, as "key: value" lines for tables' captions.
std::vector<std::pair<std::string, std::string>> provenance_summary(
    const std::vector<Record>& records);

/// A static HTML page: title, provenance, the table, and the plots (as <img> of the SVG files,
/// relative to the page).
std::string html_report(const std::string& title, const std::vector<Record>& records,
                        const std::vector<std::string>& plot_files);

/// What `sweep --tune` found for a run: its tuning/fallback.jsonl and tuning/sensitivity.jsonl
/// when `path` is a run directory, X.fallback.jsonl and X.sensitivity.jsonl beside a records
/// file X.jsonl; empty for a run that was not tuned.
std::vector<TunedPoint> load_tuning(const std::string& path);

/// Markdown for one tuned point: what the fallback kept in fp32 and what it gave (top-1,
/// latency), the `top` most sensitive layers, and the plot at `plot_file` (relative to the page).
std::string tuning_markdown(const TunedPoint& point, size_t top, const std::string& plot_file);

/// A sensitivity bar plot per tuned point, as (stem, spec): "sensitivity-1", ...
std::vector<std::pair<std::string, PlotSpec>> tuning_plots(const std::vector<TunedPoint>& tuning);

/// Writes table.md, table.csv, benchmark.json, report.html and plots/<stem>.svg to `out_dir`
/// (and history plots when `history` is not empty, sensitivity plots for `tuning`); returns the
/// files written.
std::vector<std::string> write_report(const std::string& out_dir, const std::string& title,
                                      const std::vector<Record>& records,
                                      const std::vector<nlohmann::json>& history,
                                      const std::vector<TunedPoint>& tuning = {});

/// One run of the published results: its records and, when it was tuned (sweep --tune), what
/// the tuning found.
struct PublishedRun {
  std::string name;
  std::vector<Record> records;
  std::vector<TunedPoint> tuning;
};

/// The run `name` from `path`, a run directory or a records file, with load_tuning(path).
PublishedRun load_published_run(const std::string& name, const std::string& path);

/// results/README.md for the published runs: per run its provenance, table and plots under
/// plots/ (relative to the README), whose SVGs write_published also draws, and for a tuned
/// run the fallback and the most sensitive layers of each tuned point.
std::string published_markdown(const std::vector<PublishedRun>& runs);
/// Writes `dir`/README.md and `dir`/plots/<run>-<stem>.svg; returns the files written.
std::vector<std::string> write_published(const std::string& dir, const std::vector<PublishedRun>& runs);

}  // namespace qb
