#include "experiments/tuning.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <stdexcept>

#include "experiments/metrics.h"
#include "quant/inspect.h"

namespace qb {

namespace {

std::string score_cells(const ModelScore& score) {
  // printf spells an infinite SQNR (an exact match) "inf".
  return format_number("%.2f", score.top1_percent) + " | " + format_number("%.2f", score.sqnr_db);
}

}  // namespace

nlohmann::json ModelScore::to_json() const {
  return {{"top1_percent", top1_percent}, {"sqnr_db", sqnr_to_json(sqnr_db)}};
}

ModelScore ModelScore::from_json(const nlohmann::json& json) {
  try {
    return {json.at("top1_percent").get<double>(), sqnr_from_json(json.at("sqnr_db"))};
  } catch (const std::exception& e) {
    throw std::invalid_argument("model score " + json.dump() + ": " + e.what());
  }
}

nlohmann::json LayerSensitivity::to_json() const {
  return {{"layer", layer},           {"kind", kind},
          {"index", index},           {"module_paths", module_paths},
          {"fp32_only", fp32_only.to_json()}, {"int8_only", int8_only.to_json()}};
}

LayerSensitivity LayerSensitivity::from_json(const nlohmann::json& json) {
  LayerSensitivity s;
  try {
    s.layer = json.at("layer").get<std::string>();
    s.kind = json.at("kind").get<std::string>();
    s.index = json.at("index").get<int64_t>();
    s.module_paths = json.at("module_paths").get<std::vector<std::string>>();
    s.fp32_only = ModelScore::from_json(json.at("fp32_only"));
    s.int8_only = ModelScore::from_json(json.at("int8_only"));
  } catch (const std::exception& e) {
    throw std::invalid_argument("layer sensitivity " + json.dump() + ": " + e.what());
  }
  return s;
}

std::vector<LayerSensitivity> layer_sensitivity(const GraphModule& prepared, const std::vector<QuantizedLayer>& layers,
                                                const ScoreFn& score, const SensitivityOptions& options) {
  std::vector<LayerSensitivity> result;
  for (size_t i = 0; i < layers.size(); ++i) {
    const QuantizedLayer& layer = layers[i];
    auto done = options.done.find(layer.name());
    if (done != options.done.end()) {
      result.push_back(done->second);
      continue;
    }
    LayerSensitivity s;
    s.layer = layer.name();
    s.kind = layer.kind;
    s.index = static_cast<int64_t>(i);
    s.module_paths = layer.module_paths;
    s.fp32_only = score(convert(without_quantization_of(prepared, {layer}), options.convert));
    s.int8_only = score(convert(with_only_quantized(prepared, {layer}), options.convert));
    result.push_back(s);
    if (options.on_layer) options.on_layer(s, i + 1, layers.size());
  }
  return result;
}

std::vector<LayerSensitivity> ranked(std::vector<LayerSensitivity> layers, const ModelScore& int8, int64_t examples) {
  const double p = int8.top1_percent / 100.0;
  const double noise = 100.0 * std::sqrt(p * (1.0 - p) / static_cast<double>(std::max<int64_t>(1, examples)));
  auto gain = [&](const LayerSensitivity& s) {
    const double g = s.fp32_only.top1_percent - int8.top1_percent;
    return g > noise ? g : 0.0;
  };
  std::stable_sort(layers.begin(), layers.end(), [&](const LayerSensitivity& a, const LayerSensitivity& b) {
    if (gain(a) != gain(b)) return gain(a) > gain(b);
    if (a.int8_only.sqnr_db != b.int8_only.sqnr_db) return a.int8_only.sqnr_db < b.int8_only.sqnr_db;
    if (a.fp32_only.sqnr_db != b.fp32_only.sqnr_db) return a.fp32_only.sqnr_db > b.fp32_only.sqnr_db;
    return a.index < b.index;
  });
  return layers;
}

std::string sensitivity_table(const std::vector<LayerSensitivity>& ranked, const ModelScore& int8,
                              const ModelScore& fp32) {
  std::string table =
      "| rank | layer | kind | top-1, this layer fp32 | SQNR dB, this layer fp32 | top-1, only this layer "
      "int8 | SQNR dB, only this layer int8 |\n| ---: | --- | --- | ---: | ---: | ---: | ---: |\n";
  table += "| | every layer int8 | | " + score_cells(int8) + " | | |\n";
  table += "| | fp32 | | " + score_cells(fp32) + " | | |\n";
  for (size_t i = 0; i < ranked.size(); ++i) {
    const LayerSensitivity& s = ranked[i];
    table += "| " + std::to_string(i + 1) + " | " + s.layer + " | " + s.kind + " | " + score_cells(s.fp32_only) +
             " | " + score_cells(s.int8_only) + " |\n";
  }
  return table;
}

PlotSpec sensitivity_plot(const std::string& what, std::vector<LayerSensitivity> layers, const ModelScore& int8) {
  std::sort(layers.begin(), layers.end(),
            [](const LayerSensitivity& a, const LayerSensitivity& b) { return a.index < b.index; });
  PlotSpec spec;
  spec.title = "Layer sensitivity: " + what;
  spec.x_label = "quantized layer (graph order)";
  spec.y_label = "top-1 regained with the layer in fp32 (points)";
  spec.bars = true;
  Series regained;
  regained.title = "top-1 with only this layer in fp32, minus top-1 with every layer in int8";
  for (size_t i = 0; i < layers.size(); ++i) {
    spec.x_tics.push_back(layers[i].layer);
    regained.x.push_back(static_cast<double>(i));
    regained.y.push_back(layers[i].fp32_only.top1_percent - int8.top1_percent);
  }
  spec.series.push_back(regained);
  return spec;
}

double accuracy_floor(double fp32_top1, std::optional<double> max_drop, std::optional<double> max_relative_drop) {
  if (max_drop.has_value() == max_relative_drop.has_value()) {
    throw std::invalid_argument("an accuracy budget needs exactly one of max_drop and max_relative_drop");
  }
  return max_drop ? fp32_top1 - *max_drop : fp32_top1 * (1.0 - *max_relative_drop);
}

FallbackResult search_fallback(const std::vector<QuantizedLayer>& candidates, double floor,
                               const std::function<double(const std::vector<QuantizedLayer>&)>& tuning_top1,
                               int64_t max_layers) {
  FallbackResult result;
  FallbackStep first;
  first.top1_percent = tuning_top1(result.fp32_layers);
  result.steps.push_back(first);
  result.met = first.top1_percent >= floor;
  for (const QuantizedLayer& layer : candidates) {
    if (result.met) break;
    if (max_layers > 0 && static_cast<int64_t>(result.fp32_layers.size()) >= max_layers) break;
    if (layer.module_paths.empty()) continue;
    result.fp32_layers.push_back(layer);
    FallbackStep step;
    step.added_layer = layer.name();
    step.fp32_layers = static_cast<int64_t>(result.fp32_layers.size());
    step.top1_percent = tuning_top1(result.fp32_layers);
    result.steps.push_back(step);
    result.met = step.top1_percent >= floor;
  }
  return result;
}

}  // namespace qb
