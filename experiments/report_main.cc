// bazel run //experiments:report -- RUN_DIR... [--out DIR] [--title T] [--history FILE [--append NAME]]
// bazel run //experiments:report -- --publish DIR NAME=RUN_DIR...
// Renders runs for readers: merges the records of one or more runs (e.g. the shards of a
// sweep) into table.md, table.csv, benchmark.json, report.html and SVG plots; keeps a history
// of nightly runs; and writes the published results/README.md.

#include <cstdio>
#include <string>
#include <vector>

#include "experiments/compare.h"
#include "experiments/paths.h"
#include "experiments/error_message.h"
#include "experiments/record_log.h"
#include "experiments/report.h"
#include "experiments/table.h"

namespace qb {
namespace {

constexpr const char* kUsage =
    "usage: bazel run //experiments:report -- RUN_DIR... [--out DIR] [--title T]\n"
    "                                         [--history FILE [--append NAME]]\n"
    "  merges RUN_DIR/records.jsonl of every run (a point recorded twice counts once) and writes\n"
    "  table.md, table.csv, benchmark.json, report.html and plots/*.svg to DIR (default: the\n"
    "  first RUN_DIR); --append NAME first adds the runs to the history FILE as run NAME, and\n"
    "  the history's metrics are plotted over time\n"
    "usage: bazel run //experiments:report -- --publish DIR NAME=RUN_DIR...\n"
    "  writes DIR/README.md and DIR/plots/ for the named runs (RUN_DIR may be a records file;\n"
    "  a tuned run's tuning/fallback.jsonl, or X.fallback.jsonl beside X.jsonl, is shown too)\n";

int publish(const std::string& dir, const std::vector<std::string>& named_runs) {
  std::vector<PublishedRun> runs;
  for (const std::string& named : named_runs) {
    const size_t equals = named.find('=');
    if (equals == std::string::npos || equals == 0) {
      throw std::invalid_argument("--publish expects NAME=RUN_DIR, got '" + named + "'");
    }
    runs.push_back(load_published_run(named.substr(0, equals), resolve_user_path(named.substr(equals + 1))));
  }
  for (const std::string& file : write_published(dir, runs)) std::printf("%s\n", file.c_str());
  return 0;
}

int report_main(int argc, char** argv) {
  std::vector<std::string> runs;
  std::string out, title, history, append, publish_dir;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--debug") {
      continue;  // read by main()
    } else if (arg == "--out" && has_value) {
      out = resolve_user_path(argv[++i]);
    } else if (arg == "--title" && has_value) {
      title = argv[++i];
    } else if (arg == "--history" && has_value) {
      history = resolve_user_path(argv[++i]);
    } else if (arg == "--append" && has_value) {
      append = argv[++i];
    } else if (arg == "--publish" && has_value) {
      publish_dir = resolve_user_path(argv[++i]);
    } else if (arg.rfind("--", 0) != 0) {
      runs.push_back(arg);
    } else {
      throw std::invalid_argument("unknown or incomplete argument '" + arg + "'");
    }
  }
  if (runs.empty()) throw std::invalid_argument("no runs given");
  if (!publish_dir.empty()) return publish(publish_dir, runs);
  if (!append.empty() && history.empty()) throw std::invalid_argument("--append needs --history");

  std::vector<Record> records;
  std::vector<TunedPoint> tuning;
  for (const std::string& run : runs) {
    std::vector<Record> more = load_run_records(resolve_user_path(run));
    records.insert(records.end(), more.begin(), more.end());
    std::vector<TunedPoint> tuned = load_tuning(resolve_user_path(run));
    tuning.insert(tuning.end(), tuned.begin(), tuned.end());
  }
  if (out.empty()) out = resolve_user_path(runs.front());
  if (title.empty()) title = (records.front().experiment.empty() ? "quantbench" : records.front().experiment) + " results";
  if (!append.empty()) append_history(history, append, records);
  const std::vector<nlohmann::json> past = history.empty() ? std::vector<nlohmann::json>()
                                                           : read_records(history);
  write_report(out, title, records, past, tuning);
  std::printf("%s\nwritten to %s (report.html, table.md, table.csv, benchmark.json, plots/)\n",
              markdown_table(table_rows(records)).c_str(), out.c_str());
  return 0;
}

}  // namespace
}  // namespace qb

int main(int argc, char** argv) {
  try {
    return qb::report_main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n%s", qb::error_message(e, qb::debug_requested(argc, argv)).c_str(),
                 qb::kUsage);
    return 2;
  }
}
