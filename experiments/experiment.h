#pragma once
// An experiment file read and checked in full before any work starts: the model(s), the data
// sets, the lists a sweep crosses, exclusions, and how to measure. Every problem is a
// ConfigError naming the file, line and key.
//
//   name = "quickstart"
//   notes = "..."  (shown with the published tables)
//   [model]        architecture = "fmnist_resnet8"  (or architectures = [...] without checkpoint)
//                  checkpoint, num_classes, in_channels, init_seed
//                  or instead: torchscript = "path/my_net.pt" (weights included; fp32 and
//                  graph variants only), name = "my_net" (default: the file's stem)
//   [data]         kind, root, transforms, ... (experiments/datasets.h); split = "test"
//   [calibration]  split = "train", subset = "random" | "stratified" | "sequential",
//                  samples = [...], seeds = [...], batch_size, allow_overlap = false
//                  ("sequential": the split's first N examples in file order, as a PyTorch
//                  DataLoader without shuffling gives them; seeds change nothing, so at most
//                  one seed)
//   [evaluation]   accuracy = true, batch_size, limit, subset_seed, cache = true, workers
//   [sweep]        variants = ["fp32", "eager", "graph"] (and "fp32_as_built": fp32 is timed
//                  in its deployment form, quant/fp32_deploy.h), engines, observers, weights,
//                  mappings = ["global", <names of [mappings] files>], threads, batch_sizes,
//                  isa = ["avx512_core_vnni", "avx512_core_amx"] (oneDNN's ISA cap; default:
//                  the CPU's best), corrections = ["none", "bias_correction", "equalization"],
//                  exclude = [{ variant = "eager", observer = ["entropy"] }, ...]
//   [mappings]     <name> = "path/to/qconfig_mapping.toml" (overrides over the global qconfig)
//   [latency]      repetitions, min_time_s, warmup_s; contention: retries = 2,
//                  retry_wait_s = 10, min_cpu_per_thread = 0.85,
//                  max_involuntary_switches_per_thread_s = 100, max_steal_fraction = 0.05
//                  (eval/contention.h)
//   [trust]        sqnr_batches = 2, round_trip = true, broken_below_db = 15
//   [tuning]       max_drop = 0.5 (or max_relative_drop = 0.01), points = [{...}], samples = 2000,
//                  seed = 1, sensitivity_samples = 1000, sensitivity_seed = 0, max_layers = 0
//   [output]       dir = "results/<name>"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "eval/contention.h"
#include "eval/latency.h"
#include "experiments/config.h"
#include "quant/qconfig_mapping.h"

namespace qb {

/// The model part of an experiment: which zoo architectures with which weights, or one model
/// imported from a TorchScript file.
struct ModelSpec {
  /// Zoo names; for a TorchScript model, its one name (model.name or the file's stem).
  std::vector<std::string> architectures;
  int64_t num_classes = 1000;
  std::optional<int64_t> in_channels;
  /// A torch.save state dict; empty means seeded random weights (latency-only sweeps).
  std::string checkpoint;
  uint64_t init_seed = 0;
  /// A TorchScript file (models/torchscript_import.h) holding the model and its weights; empty
  /// for zoo models. When set, architectures holds its name and the other fields are unused.
  std::string torchscript;
};

struct CalibrationSpec {
  std::string split = "train";
  /// "random" (first_n), "stratified" or "sequential" (the first N examples in file order).
  std::string subset = "random";
  std::vector<int64_t> samples = {256};
  std::vector<uint64_t> seeds = {0};
  int64_t batch_size = 32;
  bool allow_overlap = false;
};

struct EvaluationSpec {
  std::string split = "test";
  bool accuracy = true;
  int64_t batch_size = 256;
  /// Evaluate `limit` examples (0: all): the first ones, or a seeded random subset with subset_seed.
  int64_t limit = 0;
  std::optional<uint64_t> subset_seed;
  /// Decode and transform the evaluation images once per sweep, in memory.
  bool cache = true;
  int workers = 2;
};

/// The lists a sweep crosses; see points.h for what one point is.
struct SweepSpec {
  std::vector<std::string> variants = {"fp32", "graph"};
  std::vector<std::string> engines = {"onednn"};
  std::vector<std::string> observers = {"histogram"};
  std::vector<std::string> weights = {"per_channel"};
  std::vector<std::string> mappings = {"global"};
  std::vector<int64_t> threads = {1};
  std::vector<int64_t> batch_sizes = {1};
  /// oneDNN ISA caps (eval/onednn_isa.h); "" measures at the CPU's best.
  std::vector<std::string> isas = {""};
  /// What times the model (eval/isolated_latency.h's latency_runtimes()).
  std::vector<std::string> runtimes = {"interpreter"};
  /// Corrections of graph points (sweep_corrections()): "none", "bias_correction" (after
  /// calibration, quant/bias_correction.h) or "equalization" (before it, quant/equalization.h).
  std::vector<std::string> corrections = {"none"};
  /// Each rule maps point fields to a value or a list of values; a point matching every field of
  /// any rule is left out.
  std::vector<nlohmann::json> exclude;
};

struct TrustSpec {
  /// Calibration batches on which per-layer SQNR is measured (0: skip).
  int64_t sqnr_batches = 2;
  /// Save and reload each int8 model and check its accuracy is unchanged.
  bool round_trip = true;
  /// An int8 point whose output SQNR against fp32 is below this is marked broken.
  double broken_below_db = 15;
};

/// [tuning]: per-layer sensitivity and the fp32 fallback to an accuracy budget, run by
/// `sweep --tune` (experiments/tuning.h).
struct TuningSpec {
  /// The experiment has a [tuning] table.
  bool enabled = false;
  /// The budget, exactly one of the two: top-1 may fall at most max_drop points below fp32's,
  /// or at most max_relative_drop times fp32's top-1 (0.01: one percent of it).
  std::optional<double> max_drop;
  std::optional<double> max_relative_drop;
  /// Which graph points to tune, as rules like sweep.exclude's; empty: every calibrated graph point.
  std::vector<nlohmann::json> points;
  /// The tuning subset: `samples` examples of the calibration split drawn with `seed`; no example
  /// may also be in the evaluation set (checked by content).
  int64_t samples = 2000;
  uint64_t seed = 1;
  /// Sensitivity is measured on this many evaluation examples drawn with sensitivity_seed
  /// (0: the whole evaluation set).
  int64_t sensitivity_samples = 1000;
  uint64_t sensitivity_seed = 0;
  /// The greedy search gives up after this many layers fall back (0: no limit).
  int64_t max_layers = 0;
};

/// The corrections sweep.corrections accepts.
const std::vector<std::string>& sweep_corrections();

/// What a sweep does when a latency measurement was contended (eval/contention.h).
struct ContentionSpec {
  ContentionPolicy policy;
  /// Measurements again after a contended one, each after waiting retry_wait_s.
  int retries = 2;
  double retry_wait_s = 10;
};

struct Experiment {
  std::string name;
  /// What a reader of the results should know (caveats, sources); shown with published tables.
  std::string notes;
  std::string file;         // the experiment file, absolute
  std::string file_sha256;  // of its bytes
  nlohmann::json file_json;  // its whole content, for records
  ModelSpec model;
  CalibrationSpec calibration;
  EvaluationSpec evaluation;
  SweepSpec sweep;
  /// Named qconfig mappings: only object_type, module_name_regex and module_name entries; the
  /// global qconfig comes from each point's engine, observer and weights.
  std::map<std::string, QConfigMapping> mappings;
  std::map<std::string, std::string> mapping_files;  // name -> path, for records
  LatencyOptions latency;
  ContentionSpec contention;
  TrustSpec trust;
  TuningSpec tuning;
  std::string output_dir;
  /// The [data] table as written, for records and hashing.
  nlohmann::json data;
};

/// Reads everything except [data] (which open_dataset reads) from `config`; call
/// config.reject_unknown_keys() after opening the data sets.
Experiment read_experiment(Config& config, const std::string& file);

/// SHA-256 of a file's bytes as 64 hex digits; ConfigError naming the file if unreadable.
std::string file_sha256(const std::string& path);

}  // namespace qb
