#pragma once
// The record of one sweep point, as records.jsonl stores it (one JSON object per line): what was
// measured (accuracy, size, latency, trust checks), with what (the point and its configuration)
// and where (provenance). This is the record's one definition: the sweep fills it, tables,
// reports and compare read it, and to_json / record_from_json are its file format.
//
// A sweep can split a point's work into two parts run on different machines (--part): the
// accuracy part (accuracy, size, trust checks) and the latency part (latency, output SQNR);
// join_parts puts the two records of a point back together.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "eval/contention.h"
#include "eval/environment.h"
#include "experiments/points.h"
#include "experiments/stats.h"

namespace qb {

/// Accuracy on the evaluation set; int8 points have one value per calibration seed.
struct AccuracyRecord {
  int64_t examples = 0;
  std::vector<uint64_t> seeds;  // empty for fp32
  std::vector<double> top1_percent;
  std::vector<double> top5_percent;
  std::vector<double> mean_loss;
  Summary top1;  // over seeds: mean and 95% interval
  Summary top5;
};

/// How one point's latency was measured and what it gave.
struct LatencyRecord {
  int64_t threads = 1;
  int64_t batch_size = 1;
  double median_ms = 0.0;  // of one batch
  double mean_ms = 0.0;
  double stddev_ms = 0.0;
  double p90_ms = 0.0;
  double cv = 0.0;
  double per_image_median_ms = 0.0;
  std::vector<double> repetitions_ms;
  std::string form;       // what was timed (fp32 deployment form, int8 on an engine, ...)
  bool isolated = false;  // in a fresh process (eval/isolated_latency.h)
  /// Measured under contention even after the retries (eval/contention.h).
  bool noisy = false;
  bool oversubscribed = false;  // more threads than cores
  /// The contention evidence: each attempt's repetitions with their usage and reasons.
  nlohmann::json attempts = nlohmann::json::array();
  int recorded_attempt = 1;  // the attempt that stands, from 1
  ContentionPolicy policy;   // the thresholds the attempts were judged by
};

struct LayerSqnrRecord {
  std::string node;
  double db = 0.0;  // +inf when the layer is exact
};

/// The trust checks of an int8 model.
struct TrustRecord {
  int64_t int8_nodes = 0;
  std::vector<std::string> fp32_nodes;  // "name (kind)"
  /// Per-layer SQNR against the fused float model on calibration batches, in graph order.
  std::vector<LayerSqnrRecord> sqnr_db;
  int64_t sqnr_batches = 0;
  std::string worst_layer;
  /// Top-1 after a save/load round trip of the model file, and whether it is unchanged.
  std::optional<double> round_trip_top1_percent;
  std::optional<bool> round_trip_equal;
  /// The model's output against fp32's on the same images, in the measuring process.
  std::optional<double> output_sqnr_db;
  double broken_below_db = 0.0;
  bool broken = false;  // output_sqnr_db < broken_below_db
};

struct CalibrationRecord {
  std::string split;
  std::string subset;
  int64_t samples = 0;
  std::vector<uint64_t> seeds;
  std::string data;
  std::map<std::string, std::string> subset_fingerprints;  // seed -> fingerprint
  bool allow_overlap = false;
  int64_t overlapping_examples = 0;
};

/// The machine and the process settings a point was measured with.
struct RecordEnvironment {
  Environment machine;  // date_utc: when this point was measured
  int inter_op_threads = 1;
  std::string quantized_engine;    // "" for fp32
  std::string onednn_isa;          // what oneDNN dispatched to in the measuring process
  std::string onednn_max_cpu_isa;  // the cap it ran under ("" for none)
};

struct Provenance {
  std::string experiment_file;
  std::string experiment_sha256;
  nlohmann::json experiment;  // the experiment file's content, as JSON
  std::string checkpoint;
  std::string torchscript;  // the model file, when the model came as TorchScript
  std::string checkpoint_sha256;  // the checkpoint's, or the TorchScript file's
  std::string data;
  std::string data_fingerprint;
  std::string evaluation_subset_fingerprint;
  bool evaluation_cached = false;
  /// Files the data reader skipped as undecodable (skip_corrupt), listed in the run
  /// directory's skipped_files.txt.
  int64_t skipped_files = 0;
  RecordEnvironment environment;
  double elapsed_s = 0.0;
};

/// Which parts of a point a record holds.
enum class RecordPart { kAll, kAccuracy, kLatency };
/// "all", "accuracy", "latency".
std::string part_name(RecordPart part);
/// std::invalid_argument for another name.
RecordPart parse_part(const std::string& name);

struct Record {
  std::string config_hash;
  std::string experiment;
  std::string notes;
  std::string label;
  Point point;
  nlohmann::json config;  // point_config's object: what config_hash hashes
  RecordPart part = RecordPart::kAll;
  std::optional<AccuracyRecord> accuracy;  // absent without accuracy, and in a latency part
  std::optional<int64_t> size_bytes;       // absent in a latency part
  std::optional<LatencyRecord> latency;    // absent in an accuracy part
  nlohmann::json google_benchmark;         // Google Benchmark's report of the timing
  std::optional<CalibrationRecord> calibration;  // int8 only
  std::optional<TrustRecord> trust;              // int8 only
  Provenance provenance;
  /// A failed point: what went wrong (its JSON keeps the hash as "failed_config_hash", so a
  /// rerun tries the point again).
  std::string error;

  bool failed() const { return !error.empty(); }
  bool broken() const { return trust && trust->broken; }
  /// "model label, N thread(s), batch B".
  std::string describe() const;
};

nlohmann::json to_json(const Record& record);
/// Parses one line of records.jsonl; std::invalid_argument naming the missing or mistyped
/// field. Fields added after a record was written take their defaults.
Record record_from_json(const nlohmann::json& json);
/// record_from_json of each, failures included.
std::vector<Record> parse_records(const std::vector<nlohmann::json>& records);

/// The measured records, failures left out, one per config_hash in first-seen order: the
/// latest whole record of the point, or its latest accuracy and latency parts joined, with a
/// part measured after the whole record replacing that part of it (shards, parts, reruns and
/// --force may record a point more than once).
std::vector<Record> latest_measured(const std::vector<Record>& records);

/// `accuracy`'s accuracy, size, calibration and trust checks with `latency`'s timing and
/// output SQNR (either may be a whole record); std::invalid_argument unless both are of the
/// same point.
Record join_parts(const Record& accuracy, const Record& latency);

}  // namespace qb
