#pragma once
// The points of a sweep: the Cartesian product of an experiment's lists, minus its exclude rules,
// in a fixed order (runtime, ISA, threads and batch sizes innermost, so consecutive points share a
// model), and
// the hash that identifies a point's configuration across runs.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "experiments/experiment.h"
#include "quant/qconfig_mapping.h"

namespace qb {

/// One configuration to measure. fp32 points leave the quantization fields empty (samples -1).
struct Point {
  std::string model;
  /// "fp32" (timed in its deployment form, quant/fp32_deploy.h), "fp32_as_built" (the graph
  /// as built, LibTorch's default kernels), "eager" or "graph"
  std::string variant;
  std::string engine;
  std::string observer;
  std::string weights;
  std::string mapping;
  int64_t samples = -1;  // calibration samples; 0 converts without calibration
  int64_t threads = 1;
  int64_t batch_size = 1;
  /// The oneDNN ISA cap the point is timed under (eval/onednn_isa.h); "" for the CPU's best.
  std::string isa;
  /// What runs the model when it is timed (eval/isolated_latency.h): "interpreter" or
  /// "torchscript". The same converted model either way, so accuracy is measured once.
  std::string runtime = "interpreter";
  /// A graph point's correction before or after calibration (experiment.h's
  /// sweep_corrections()): "none", "bias_correction" or "equalization".
  std::string correction = "none";

  bool int8() const { return variant == "eager" || variant == "graph"; }
  /// The table's row label, e.g. "graph histogram/per_channel calib=256 onednn" or "fp32";
  /// the model and a non-global mapping are added when they vary.
  std::string label() const;
  /// The fields above as a JSON object (exclude rules match against it).
  nlohmann::json to_json() const;
  /// The inverse of to_json; std::invalid_argument naming a missing or mistyped field.
  static Point from_json(const nlohmann::json& json);
  /// Identifies the converted model: every field except threads, batch size, ISA and runtime.
  std::string model_key() const;
};

/// The qconfig mapping of an int8 point: the experiment's named mapping (its per-type and
/// per-name overrides) with a global qconfig of the engine's defaults, the point's activation
/// observer and its weight scheme (symmetric qint8, per tensor or per output channel).
QConfigMapping point_mapping(const Experiment& experiment, const Point& point);

/// Whether a rule ({field: value or [values]}) matches every one of its fields in `point`.
bool matches(const nlohmann::json& rule, const Point& point);

/// All points of the experiment, in sweep order, without those an exclude rule matches.
std::vector<Point> expand(const Experiment& experiment);

/// Everything that decides a point's numbers: the point, the model and weights (by SHA-256:
/// `checkpoint_sha256` is the checkpoint's, or the TorchScript file's), the data set settings,
/// calibration, evaluation and latency settings. Not the machine or the code revision, which
/// records keep as provenance: a resumed sweep on the same machine skips points whose
/// configuration is unchanged.
nlohmann::json point_config(const Experiment& experiment, const Point& point,
                            const std::string& checkpoint_sha256);

/// A stable hash of a point configuration (16 hex digits): FNV-1a 64 of its JSON text with keys
/// sorted, so it does not depend on the order keys were written in.
std::string config_hash(const nlohmann::json& config);

/// Parses "K/N" (1 <= K <= N) for --shard; std::invalid_argument otherwise.
std::pair<int, int> parse_shard(const std::string& text);

/// Shard k of n (1-based): points grouped by model_key, group g going to shard g mod n, so a
/// model is calibrated on one machine only; the shards together cover every point exactly once.
std::vector<Point> shard(const std::vector<Point>& points, int k, int n);

}  // namespace qb
