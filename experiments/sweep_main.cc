// bazel run //experiments:sweep -- EXPERIMENT.toml [--run NAME] [--force] [--shard K/N|auto[/N]]
//                                  [--part all|accuracy|latency] [--tune]
// Measures every point of an experiment (experiments/experiment.h) that its run directory,
// results/<name>/<run>/, does not hold yet, and writes the run's tables.

#include <ATen/Parallel.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "eval/isolated_latency.h"
#include "eval/onednn_isa.h"
#include "experiments/config.h"
#include "experiments/datasets.h"
#include "experiments/experiment.h"
#include "experiments/paths.h"
#include "experiments/points.h"
#include "experiments/error_message.h"
#include "experiments/shard_env.h"
#include "experiments/sweep.h"

namespace qb {
namespace {

constexpr const char* kUsage =
    "usage: bazel run //experiments:sweep -- EXPERIMENT.toml [--run NAME] [--force] [--shard K/N|auto[/N]]\n"
    "  --run NAME   the run directory under the experiment's output dir (default: default);\n"
    "               points already recorded there are skipped\n"
    "  --force      measure recorded points again (and write into another experiment's run)\n"
    "  --check      only check the experiment: the file, the data, and that each model loads\n"
    "               its weights and runs on the data; measures nothing\n"
    "  --tune       per-layer sensitivity and the fp32 fallback to the [tuning] budget of the\n"
    "               [tuning] points, into the run directory's tuning/ (docs/experiments.md)\n"
    "  --debug      errors with LibTorch's backtraces\n"
    "  --shard K/N  measure only shard K of N (merge shards with //experiments:report)\n"
    "  --shard auto[/N]  K/N from a Slurm array, a Kubernetes indexed Job (N given) or Bazel\n"
    "               test sharding (experiments/shard_env.h)\n"
    "  --part P     all (default), accuracy (accuracy, size, trust checks: shard it anywhere)\n"
    "               or latency (timing and output SQNR: run it on the one reference machine);\n"
    "               the parts' records join into one run (give //:report both run directories)\n";

// A sweep timed under one oneDNN ISA cap measures accuracy in this process under the same cap,
// set before oneDNN's first primitive: oneDNN 2.6.3's AMX int8 depthwise and grouped
// convolutions are wrong, and an experiment capped at avx512_core_vnni for that reason must not
// report AMX's accuracy. A cap in the environment wins.
void cap_onednn_like_the_probes(const Experiment& experiment) {
  const std::vector<std::string>& isas = experiment.sweep.isas;
  if (isas.size() != 1 || isas[0].empty() || !onednn_isa_cap_from_environment().empty() || !cpu_has_isa(isas[0])) {
    return;
  }
  ::setenv("ONEDNN_MAX_CPU_ISA", onednn_max_cpu_isa_value(isas[0]).c_str(), 1);
  std::fprintf(stderr, "note: oneDNN capped at %s in this process too (sweep.isa)\n", isas[0].c_str());
}

int sweep_main(int argc, char** argv) {
  std::string file;
  SweepOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--debug") {
      continue;  // read by main()
    } else if (arg == "--force") {
      options.force = true;
    } else if (arg == "--check") {
      options.check_only = true;
    } else if (arg == "--tune") {
      options.tune = true;
    } else if ((arg == "--run" || arg == "--shard" || arg == "--part") && i + 1 < argc) {
      std::string value = argv[++i];
      if (arg == "--run") {
        options.run = value;
      } else if (arg == "--part") {
        options.part = parse_part(value);
      } else {
        std::tie(options.shard_k, options.shard_n) =
            value.rfind("auto", 0) == 0 ? shard_from_environment(value) : parse_shard(value);
      }
    } else if (arg.rfind("--", 0) != 0 && file.empty()) {
      file = resolve_user_path(arg);
    } else {
      std::fprintf(stderr, "unknown or incomplete argument '%s'\n%s", arg.c_str(), kUsage);
      return 2;
    }
  }
  if (file.empty()) {
    std::fprintf(stderr, "%s", kUsage);
    return 2;
  }
  // Latency is measured at a given number of intra-op threads; inter-op parallelism would add
  // threads the point does not name. It can only be set before any parallel work.
  at::set_num_interop_threads(1);

  options.latency_probe = find_latency_probe(argv[0]);
  // The whole file first (syntax, keys, types, ranges, that files exist), then the data; the
  // sweep then checks the models on it before any work (SweepOptions::check_only).
  Config config = Config::from_file(file);
  Experiment experiment = read_experiment(config, file);
  DatasetOpener open_evaluation = read_dataset(config, "data", experiment.evaluation.split);
  DatasetOpener open_calibration = read_dataset(config, "data", experiment.calibration.split);
  config.reject_unknown_keys();
  cap_onednn_like_the_probes(experiment);
  std::unique_ptr<Dataset> evaluation = open_evaluation();
  std::unique_ptr<Dataset> calibration;
  if (experiment.calibration.split != experiment.evaluation.split) calibration = open_calibration();
  SweepSummary summary =
      run_sweep(experiment, *evaluation, calibration ? *calibration : *evaluation, options);
  if (summary.failed > 0) {
    std::fprintf(stderr, "%d point(s) failed (listed above); their records say why\n",
                 summary.failed);
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace qb

int main(int argc, char** argv) {
  try {
    return qb::sweep_main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", qb::error_message(e, qb::debug_requested(argc, argv)).c_str());
    return 1;
  }
}
