#pragma once
// Accuracy-aware quantization of one int8 configuration: how much each quantized layer costs
// (per-layer sensitivity, from one calibration), and the smallest greedy set of layers to keep
// in fp32 so that top-1 stays within a budget. The model scores come from callbacks, so this
// file knows nothing of data sets; the sweep (experiments/sweep.h, --tune) supplies them.

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/plot.h"
#include "quant/convert.h"
#include "quant/fp32_fallback.h"
#include "quant/graph_module.h"

namespace qb {

/// How good a converted model is on a subset: top-1 and output SQNR against fp32.
struct ModelScore {
  double top1_percent = 0;
  double sqnr_db = 0;

  /// {"top1_percent", "sqnr_db"}, infinite SQNR as "inf" (quant/inspect.h's sqnr_to_json).
  nlohmann::json to_json() const;
  /// std::invalid_argument naming a missing or mistyped field.
  static ModelScore from_json(const nlohmann::json& json);
};

/// Scores a converted model.
using ScoreFn = std::function<ModelScore(const GraphModule& converted)>;

/// One layer's sensitivity: the model with only this layer in fp32, and with only it in int8.
struct LayerSensitivity {
  std::string layer;  // QuantizedLayer::name()
  std::string kind;
  int64_t index = 0;  // position among the quantized layers, in graph order
  std::vector<std::string> module_paths;
  ModelScore fp32_only;  // every other layer int8
  ModelScore int8_only;  // every other layer fp32

  nlohmann::json to_json() const;
  /// std::invalid_argument naming a missing or mistyped field.
  static LayerSensitivity from_json(const nlohmann::json& json);
};

struct SensitivityOptions {
  ConvertOptions convert;
  /// Layers measured before (a resumed analysis), by layer name: reused, not measured again.
  std::map<std::string, LayerSensitivity> done;
  /// Called after each layer measured anew, with the number of layers done out of all.
  std::function<void(const LayerSensitivity&, size_t done, size_t total)> on_layer;
};

/// Each of `layers` (quantized_layers of the calibrated `prepared`, quant/fp32_fallback.h), in
/// their order, scored twice from the one calibration `prepared` holds.
std::vector<LayerSensitivity> layer_sensitivity(const GraphModule& prepared, const std::vector<QuantizedLayer>& layers,
                                                const ScoreFn& score, const SensitivityOptions& options);

/// Most sensitive first. A layer's gain is its top-1 with it in fp32 minus `int8`'s (every layer
/// quantized) on the same `examples`; gains within one standard error of that top-1
/// (sqrt(p (1 - p) / examples)) are noise and count as none. Larger gains come first; among
/// equal gains, the layer that alone in int8 gives the lowest output SQNR (its own damage, which
/// a model broken by another layer hides from the gains), then the highest SQNR with it in
/// fp32, then graph order.
std::vector<LayerSensitivity> ranked(std::vector<LayerSensitivity> layers, const ModelScore& int8, int64_t examples);

/// A Markdown table of `ranked` layers: rank, layer, kind, top-1 and SQNR in both settings, with
/// `int8` (every layer quantized) and `fp32` as the reference rows.
std::string sensitivity_table(const std::vector<LayerSensitivity>& ranked, const ModelScore& int8,
                              const ModelScore& fp32);

/// A bar per layer, in graph order: the top-1 regained by keeping it in fp32, against `int8`
/// (every layer quantized); `what` names the configuration in the title.
PlotSpec sensitivity_plot(const std::string& what, std::vector<LayerSensitivity> layers, const ModelScore& int8);

/// The least top-1 a tuned model may have: fp32's minus max_drop points, or times
/// (1 - max_relative_drop). Exactly one must be set (std::invalid_argument otherwise).
double accuracy_floor(double fp32_top1, std::optional<double> max_drop,
                      std::optional<double> max_relative_drop);

/// One step of the greedy search.
struct FallbackStep {
  std::string added_layer;  // "" for the first step (nothing in fp32)
  int64_t fp32_layers = 0;
  double top1_percent = 0;  // on the tuning subset
};

struct FallbackResult {
  /// The layers kept in fp32, in the order they were added.
  std::vector<QuantizedLayer> fp32_layers;
  std::vector<FallbackStep> steps;
  /// Whether the last step reached the floor; false when the candidates or max_layers ran out.
  bool met = false;
};

/// Greedy fallback: keeps the `candidates` (most sensitive first) in fp32 one more at a time,
/// scoring each set with `tuning_top1`, until the score reaches `floor`. Layers without module
/// paths (function calls, which a mapping cannot name) are skipped. `max_layers` > 0 caps the set.
FallbackResult search_fallback(const std::vector<QuantizedLayer>& candidates, double floor,
                               const std::function<double(const std::vector<QuantizedLayer>&)>& tuning_top1,
                               int64_t max_layers);

}  // namespace qb
