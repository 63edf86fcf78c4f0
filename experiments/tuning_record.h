#pragma once
// What `sweep --tune` records per tuned point (tuning/fallback.jsonl, one line each): one type
// that the sweep writes and reports read, and the reader that joins it with the point's
// sensitivity lines (tuning/sensitivity.jsonl).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/points.h"
#include "experiments/tuning.h"

namespace qb {

/// Top-1 of the fp32, the all-int8 and the tuned model on one set of examples.
struct TunedAccuracies {
  int64_t examples = 0;
  double fp32_top1_percent = 0;
  double int8_top1_percent = 0;
  double tuned_top1_percent = 0;
};

struct FallbackRecord {
  /// Of the point, its sensitivity settings and its budget; a later line with the same hash
  /// replaces an earlier one.
  std::string config_hash;
  /// Of the point and its sensitivity settings: the key of its sensitivity.jsonl lines.
  std::string sensitivity_config_hash;
  std::string experiment;
  std::string model;
  std::string label;
  Point point;

  /// The [tuning] settings the search ran with.
  std::optional<double> max_drop;
  std::optional<double> max_relative_drop;
  int64_t tuning_samples = 0;
  uint64_t tuning_seed = 0;
  int64_t max_layers = 0;

  /// Quantized layers, and those kept in fp32 in the order they were added.
  int64_t layers = 0;
  std::vector<std::string> fp32_layers;
  /// The tuned top-1 on the tuning subset reached floor_percent.
  bool met = false;

  /// On the tuning subset, with the floor and every step of the search.
  TunedAccuracies tuning;
  double floor_percent = 0;
  std::vector<FallbackStep> steps;
  /// On the whole evaluation set, first calibration seed.
  TunedAccuracies evaluation;

  /// Sensitivity's examples, the scores of every layer in int8 and of fp32 on them, and the
  /// ranked table's file (relative to the checkout when inside it).
  int64_t sensitivity_examples = 0;
  ModelScore sensitivity_int8;
  ModelScore sensitivity_fp32;
  std::string sensitivity_table;

  /// The untuned and the tuned int8 model timed like the point, each in a fresh process.
  int64_t threads = 1;
  int64_t batch_size = 1;
  std::string isa;         // the cap asked for ("" for none)
  std::string onednn_isa;  // what oneDNN dispatched to
  std::string runtime;
  double int8_median_ms = 0;
  double tuned_median_ms = 0;
  bool latency_noisy = false;
  double tuned_over_int8() const { return tuned_median_ms / int8_median_ms; }

  /// The mapping file that keeps fp32_layers in fp32 (relative to the checkout when inside it).
  std::string mapping_file;

  std::string experiment_file;
  std::string experiment_sha256;
  std::string checkpoint_sha256;
  std::string git_revision;
  std::string date_utc;
  double elapsed_s = 0;

  nlohmann::json to_json() const;
  /// std::invalid_argument naming a missing or mistyped field.
  static FallbackRecord from_json(const nlohmann::json& json);
};

/// What `sweep --tune` recorded for one point: its fallback and its layers' sensitivity.
struct TunedPoint {
  FallbackRecord fallback;
  std::vector<LayerSensitivity> layers;

  /// "model label", as plots and headings name it.
  std::string title() const { return fallback.model + " " + fallback.label; }
};

/// The tuned points of a fallback.jsonl file, each with its layers from `sensitivity_file`
/// (joined by sensitivity_config_hash); a later line for the same point replaces an earlier
/// one. std::invalid_argument naming the file and line for a line that is not a record.
std::vector<TunedPoint> read_tuned_points(const std::string& fallback_file, const std::string& sensitivity_file);

}  // namespace qb
