// bazel run //experiments:compare -- BASELINE CURRENT [options]
// Compares two runs (run directories or records files, e.g. results/baselines/nightly.jsonl)
// point by point. Exit status: 0 clean, 1 regression, 2 bad input, 3 latency not comparable
// (another machine) and nothing else regressed.

#include <cstdio>
#include <fstream>
#include <string>

#include "base/atomic_file.h"
#include "eval/environment.h"
#include "experiments/compare.h"
#include "experiments/error_message.h"
#include "experiments/metrics.h"
#include "experiments/paths.h"

namespace qb {
namespace {

constexpr const char* kUsage =
    "usage: bazel run //experiments:compare -- BASELINE CURRENT [options]\n"
    "  BASELINE, CURRENT        run directories (with records.jsonl) or records files\n"
    "  --alpha A                latency test significance level (default 0.05)\n"
    "  --tolerance METRIC=T     smallest change of METRIC that counts: relative for latency_ms\n"
    "                           and size_bytes (defaults 0.05 and 0: any), in points for\n"
    "                           top1_percent and top5_percent (0.1), in dB for output_sqnr_db\n"
    "                           (0.5); may be repeated\n"
    "  --min-change R           --tolerance latency_ms=R\n"
    "  --accuracy-tolerance P   --tolerance top1_percent=P --tolerance top5_percent=P\n"
    "  --report FILE.md         also write the Markdown report there\n"
    "  --json FILE.json         write the JSON verdict there\n"
    "  --fingerprint            print this machine's fingerprint (baselines are kept per\n"
    "                           fingerprint) and exit\n"
    "exit status: 0 clean, 1 regression (also: failed points in CURRENT, or no point\n"
    "compared), 2 bad input, 3 latency not comparable (another\n"
    "machine or LibTorch build; accuracy and size were still judged)\n";

double number(const std::string& flag, const std::string& text) {
  size_t used = 0;
  double value = -1;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || !(value >= 0)) {
    throw std::invalid_argument(flag + " expects a non-negative number, got '" + text + "'");
  }
  return value;
}

int compare_main(int argc, char** argv) {
  std::vector<std::string> runs;
  CompareOptions options;
  std::string report_path;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--debug") {
      continue;  // read by main()
    } else if (arg == "--alpha" && has_value) {
      options.alpha = number(arg, argv[++i]);
    } else if (arg == "--tolerance" && has_value) {
      const std::string text = argv[++i];
      const size_t equals = text.find('=');
      if (equals == std::string::npos) {
        throw std::invalid_argument("--tolerance expects METRIC=VALUE, got '" + text + "'");
      }
      const std::string key = text.substr(0, equals);
      metric(key);  // an unknown name is an error listing the metrics
      options.tolerance[key] = number(arg, text.substr(equals + 1));
    } else if (arg == "--min-change" && has_value) {
      options.tolerance["latency_ms"] = number(arg, argv[++i]);
    } else if (arg == "--accuracy-tolerance" && has_value) {
      const double points = number(arg, argv[++i]);
      options.tolerance["top1_percent"] = points;
      options.tolerance["top5_percent"] = points;
    } else if (arg == "--report" && has_value) {
      report_path = resolve_user_path(argv[++i]);
    } else if (arg == "--json" && has_value) {
      json_path = resolve_user_path(argv[++i]);
    } else if (arg == "--fingerprint") {
      std::printf("%s\n", machine_fingerprint(capture_environment(workspace_dir())).c_str());
      return 0;
    } else if (arg.rfind("--", 0) != 0) {
      runs.push_back(resolve_user_path(arg));
    } else {
      throw std::invalid_argument("unknown or incomplete argument '" + arg + "'");
    }
  }
  if (runs.size() != 2) throw std::invalid_argument("expects BASELINE and CURRENT");
  const Comparison comparison =
      compare_records(load_run_records(runs[0]), load_run_records(runs[1]), options);
  const std::string report = markdown_report(comparison, options, runs[0], runs[1]);
  std::printf("%s", report.c_str());
  if (!report_path.empty()) write_file_atomically(report_path, report);
  if (!json_path.empty()) write_file_atomically(json_path, verdict_json(comparison, options).dump(2) + "\n");
  for (const std::string& difference : comparison.environment_differences) {
    std::fprintf(stderr, "%s: environments differ: %s\n",
                 comparison.latency_comparable ? "note" : "latency not comparable", difference.c_str());
  }
  if (comparison.regression()) return 1;
  return comparison.latency_comparable ? 0 : 3;
}

}  // namespace
}  // namespace qb

int main(int argc, char** argv) {
  try {
    return qb::compare_main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n%s", qb::error_message(e, qb::debug_requested(argc, argv)).c_str(),
                 qb::kUsage);
    return 2;
  }
}
